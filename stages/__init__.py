"""The stage scripts, importable as modules (`from stages import graph`) so tests call their
`main(argv)` and params dataclasses directly; dvc.yaml runs each as `python stages/<x>.py`."""
