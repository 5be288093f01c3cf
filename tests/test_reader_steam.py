"""Steam reader and the shared Python-literal parser.

The real `steam_games.json.gz` (32,135 lines) checks item parsing. No real Steam interaction
file is available, so `fixtures/steam/` holds hand-written lines in the published formats:
- `reviews/steam_reviews.json` (Python-2 `u''` literals): lines 1, 2, 5, 8 good (2 has a
  `user_id`, 8 reviews a game absent from the games file), 3 lacks `product_id`, 4 has a
  non-ISO date, 6 is a list, 7 is cut off. `reviews/steam_games.json`: line 1 id 10 (price
  9.99), 2 id 643980 ("Free To Play"), 3 no id, 4 id 1250 ("Starting at $499.00"),
  5 a duplicate id 10, 6 cut off.
- `australian/australian_user_reviews.json`: line 1 two reviews (one "Posted July 15." without
  a year), line 2 three reviews (one unparsable date, one without item_id), line 3 no user_id,
  line 4 cut off.
- `australian/australian_users_items.json`: line 1 three games, 2 one game, 3 cut off,
  4 no games, 5 repeats line 2 (the real file has repeated users too).
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter

import pytest
from conftest import FIXTURES, shared_path

from recpipe.data.pyliteral import parse_literal_chunk, read_literals
from recpipe.data.readers import ReadOptions
from recpipe.data.readers.steam import parse_games, parse_price, posted_ts, read
from recpipe.data.rejects import IngestError, RejectLog

REVIEWS = FIXTURES / "steam" / "reviews"
AUSTRALIAN = FIXTURES / "steam" / "australian"


def _read(folder, tmp_path, **opts):
    rejects = RejectLog()
    opts.setdefault("workers", 1)
    tables = read(folder, ReadOptions(**opts), rejects, tmp_path / "work")
    return tables, rejects


def _rejects(rejects, file):
    return sorted((r.line, r.field or "") for r in rejects.rejects if r.file == file)


# --- the literal parser ---------------------------------------------------------------------


def test_parse_literal_chunk_records_and_errors():
    lines = [
        b"{u'id': u'10', u'price': 9.99, u'tags': [u'Action'], u'ok': True}\n",
        b"[u'a', u'list']\n",
        b"{u'id': u'broken'\n",
        b"{'x': __import__('os').system('true')}\n",  # literal_eval never runs code
        b"{'name': 'Caf\\xe9'}\n",
    ]
    records, errors = parse_literal_chunk([1, 2, 3, 5, 9], lines)
    assert records == [
        (1, {"id": "10", "price": 9.99, "tags": ["Action"], "ok": True}),
        (9, {"name": "Caf\u00e9"}),
    ]
    assert [(n, reason.split(":")[0]) for n, reason, _ in errors] == [
        (2, "expected a dict literal, got list"),
        (3, "malformed Python literal"),
        (5, "malformed Python literal"),
    ]
    assert errors[1][2].startswith("{u'id': u'broken'")


def test_parallel_literal_parse_matches_serial():
    # chunk_lines=2 gives 4 pool tasks for the 8-line file; results must come back in order.
    file = REVIEWS / "steam_reviews.json"
    serial, parallel = RejectLog(), RejectLog()
    one = read_literals(file, serial, workers=1, chunk_lines=2)
    two = read_literals(file, parallel, workers=2, chunk_lines=2)
    assert one == two and [n for n, _ in one] == [1, 2, 3, 4, 5, 8]
    assert [r.as_dict() for r in serial.rejects] == [r.as_dict() for r in parallel.rejects]
    assert [r.line for r in serial.rejects] == [6, 7]
    assert serial.lines == parallel.lines == {"steam_reviews.json": 8}


# --- items: the real games file ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real_games():
    path = shared_path("steam_raw", "steam_games.json.gz")
    rejects, stats = RejectLog(), Counter()
    games = parse_games(path, ReadOptions(workers=0), rejects, stats)  # 0 = all cores
    return games, rejects, stats


@pytest.mark.shared
def test_real_games_counts(real_games):
    games, rejects, stats = real_games
    assert rejects.lines == {"steam_games.json.gz": 32_135}
    assert games.height == 32_132 and games["item"].n_unique() == 32_132
    # Lines 75 and 30962 have no `id` (checked with zcat | sed -n); 612880 appears twice.
    assert [(r.line, r.field) for r in rejects.rejects] == [(75, "id"), (30962, "id")]
    assert stats["duplicate_items"] == 1
    assert games["domain"].unique().to_list() == ["steam"]


@pytest.mark.shared
def test_real_games_known_items(real_games):
    games, _, stats = real_games
    picked = games.filter(games["item"].is_in(["761140", "643980", "612880"]))
    rows = {r["item"]: r for r in picked.iter_rows(named=True)}
    kitty = rows["761140"]  # line 1 of the file
    assert kitty["title"] == "Lost Summoner Kitty"
    assert kitty["categories"] == ["Action", "Casual", "Indie", "Simulation", "Strategy"]
    assert (kitty["brand"], kitty["price"], kitty["description"]) == ("Kotoshiro", 4.99, None)
    extra = json.loads(kitty["extra"])
    assert extra["tags"] == ["Strategy", "Action", "Indie", "Casual", "Simulation"]
    assert extra["publisher"] == "Kotoshiro" and extra["release_date"] == "2018-01-04"
    assert extra["early_access"] is False and extra["discount_price"] == 4.49
    # Line 2: price u'Free To Play' -> 0.0, text kept; developer wins over publisher as brand.
    iron = rows["643980"]
    assert (iron["title"], iron["price"], iron["brand"]) == ("Ironbound", 0.0, "Secret Level SRL")
    assert json.loads(iron["extra"])["price_text"] == "Free To Play"
    # 612880 is on lines 13895 and 14574; the first (shorter url) is kept.
    assert json.loads(rows["612880"]["extra"])["url"] == "http://store.steampowered.com/app/612880/"
    # 905 "Free" + 520 "Free to Play" + 462 "Free To Play" + 13 other "free" offers = 1900.
    assert stats["price_free_text"] == 1900 and stats["price_unparsable"] == 10
    assert (games["price"] == 0.0).sum() == 1900


def test_price_rules():
    assert parse_price(4.99) == 4.99 and parse_price(5) == 5.0
    for text in ("Free", "Free to Play", "Free To Play", "Play for Free!", "Free Demo"):
        assert parse_price(text) == 0.0
    assert parse_price("Starting at $499.00") is None and parse_price("Install Now") is None
    assert parse_price(None) is None and parse_price(True) is None
    assert parse_price("Freedom Pack") is None  # the word "free", not the letters


# --- interactions: one test per source ------------------------------------------------------


def test_steam_reviews_source(tmp_path):
    tables, rejects = _read(REVIEWS, tmp_path)
    inter = tables.interactions.collect()
    assert inter.select("user", "item", "ts").rows() == [
        ("Chaos Syren", "725280", 1513468800),  # 2017-12-17 00:00 UTC
        ("freakfantom", "10", 1514332800),  # user = username even where user_id exists
        ("Ariman1", "643980", 1514332800),
        ("Chaos Syren", "999999", 1514851200),
    ]
    assert inter["rating"].null_count() == 4 and inter["domain"].unique().to_list() == ["steam"]
    assert inter["review"][1] == "Pr\u00e9sentation tr\u00e8s bien"
    extra = json.loads(inter["extra"][1])
    assert extra["user_id"] == "76561198007483075" and extra["hours"] == 0.1
    assert extra["compensation"] == "Product received for free"
    assert _rejects(rejects, "steam_reviews.json") == [
        (3, "product_id"), (4, "date"), (6, ""), (7, "")
    ]
    assert _rejects(rejects, "steam_games.json") == [(3, "id"), (6, "")]
    items = {r["item"]: r for r in tables.items.iter_rows(named=True)}
    assert set(items) == {"10", "643980", "1250", "725280", "999999"}
    assert items["10"]["title"] == "Counter-Strike" and items["10"]["price"] == 9.99  # first line
    assert items["1250"]["price"] is None
    assert items["999999"]["title"] is None
    assert tables.stats["items_without_meta"] == 2  # 999999, and 725280 whose line is broken
    assert tables.stats["duplicate_items"] == 1
    assert tables.users is None


def test_australian_reviews_source(tmp_path):
    tables, rejects = _read(AUSTRALIAN, tmp_path)  # auto: no steam_reviews here
    inter = tables.interactions.collect()
    assert inter.select("user", "item", "rating", "ts").rows() == [
        ("76561197970982479", "1250", 1.0, 1320451200),  # Posted November 5, 2011.
        ("76561197970982479", "22200", 0.0, None),  # Posted July 15. -> no year, ts null
        ("js41637", "251610", 1.0, 1403568000),  # Posted June 24, 2014.
    ]
    assert tables.stats["posted_without_year"] == 1
    assert tables.stats["source_australian_reviews"] == 1
    assert json.loads(inter["extra"][2])["last_edited"] == "Last edited June 25, 2014."
    assert _rejects(rejects, "australian_user_reviews.json") == [
        (2, "reviews[1].posted"), (2, "reviews[2].item_id"), (3, "user_id"), (4, "")
    ]
    assert tables.users["user"].to_list() == ["76561197970982479", "js41637"]


def test_australian_items_source_and_gzip(tmp_path):
    plain, rejects = _read(AUSTRALIAN, tmp_path / "a", steam_source="australian_items")
    inter = plain.interactions.collect()
    assert inter.select("user", "item").rows() == [
        ("76561197970982479", "10"), ("76561197970982479", "20"), ("76561197970982479", "30"),
        ("js41637", "10"), ("js41637", "10"),  # a repeated user line is kept (cleaning dedupes)
    ]
    assert inter["ts"].null_count() == 5 and inter["rating"].null_count() == 5
    assert json.loads(inter["extra"][2]) == {
        "item_name": "Day of Defeat", "playtime_forever": 7, "playtime_2weeks": 2
    }
    assert _rejects(rejects, "australian_users_items.json") == [(3, "")]
    assert plain.stats["duplicate_user_lines"] == 1
    assert plain.users.height == 3  # js41637 once; `empty` owns nothing but is a user
    titles = dict(plain.items.select("item", "title").rows())  # no games file: names from items
    assert titles == {"10": "Counter-Strike", "20": "Team Fortress Classic", "30": "Day of Defeat"}

    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "australian_users_items.json.gz", "wb") as dst:
        dst.write((AUSTRALIAN / "australian_users_items.json").read_bytes())
    gz, _ = _read(folder, tmp_path / "b")  # auto finds the .gz variant
    assert gz.interactions.collect().equals(inter)


def test_missing_interaction_file_is_an_error(tmp_path):
    folder = tmp_path / "games_only"
    folder.mkdir()
    shutil.copy(REVIEWS / "steam_games.json", folder / "steam_games.json")
    with pytest.raises(IngestError) as err:
        _read(folder, tmp_path)
    for name in ("steam_reviews.json.gz", "australian_user_reviews.json"):
        assert name in str(err.value)
    assert "australian_users_items.json" in str(err.value)
    with pytest.raises(IngestError, match="steam_reviews.json.gz"):
        _read(AUSTRALIAN, tmp_path, steam_source="reviews")
    with pytest.raises(IngestError, match="steam_source='bogus'"):
        _read(AUSTRALIAN, tmp_path, steam_source="bogus")


def test_posted_dates():
    assert posted_ts("Posted November 5, 2011.") == (1320451200, True)
    assert posted_ts("Posted July 15.") == (None, True)
    assert posted_ts("Posted sometime.") == (None, False)
    assert posted_ts(None) == (None, False)
