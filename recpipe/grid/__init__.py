"""The leaderboard grid: every method x dataset x seed as DVC experiments, collected into one
table (README "The leaderboard grid"). `plan` builds the cells, `collect` reads them back,
`cli` is `recpipe grid plan | queue | collect`."""
