import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipelines.movielens import read_movielens
from pipelines.validate import validate

RATINGS = [(1, 10, 5, 881250949), (1, 20, 3, 881250950), (2, 10, 1, 881250951), (2, 30, 4, 881250952)]
MOVIES = [(10, "Toy Story (1995)", "Animation Children's Comedy"), (20, "GoldenEye (1995)", "Action Thriller"),
          (30, "Heat (1995)", "")]
USERS = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043")]
GENRE_ORDER = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
               "Thriller", "War", "Western"]


def write_classic(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    lines = []
    for mid, title, genres in MOVIES:
        flags = ["1" if g in genres.split() else "0" for g in GENRE_ORDER]
        if not genres:
            flags[0] = "1"
        lines.append("|".join([str(mid), title, "01-Jan-1995", "", "http://x"] + flags))
    (root / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (root / "u.user").write_text("".join("|".join(map(str, u)) + "\n" for u in USERS))
    return root


def write_atomic(root: Path) -> Path:
    d = root / "recbole" / "dataset_example" / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    (d / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" +
                                     "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    (d / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                    + "".join(f"{m}\t{t[:-7]}\t1995\t{g}\n" for m, t, g in MOVIES))
    (d / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                    + "".join("\t".join(map(str, u)) + "\n" for u in USERS))
    return root


def _canonical(source: Path):
    return validate(*read_movielens(source))


@pytest.mark.parametrize("writer", [write_classic, write_atomic])
def test_loader_maps_ratings_and_genres(tmp_path: Path, writer) -> None:
    v = _canonical(writer(tmp_path / "ml"))
    assert v.rejected.empty
    ev = v.events.set_index(["user_id", "item_id"])
    assert ev.loc[("1", "10"), "event"] == "purchase" and ev.loc[("1", "10"), "rating"] == 5
    assert ev.loc[("1", "20"), "event"] == "cart"
    assert ev.loc[("2", "10"), "event"] == "view"
    items = v.items.set_index("item_id")
    assert items.loc["10", "category"] == "Animation"
    assert items.loc["10", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["30", "category"] == "unknown"
    # created_at = the movie's first rating
    assert items.loc["10", "created_at"] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert v.users.set_index("user_id").loc["2", "age_band"] == "45-55"


def test_classic_and_atomic_and_wheel_agree(tmp_path: Path) -> None:
    a = _canonical(write_classic(tmp_path / "classic"))
    atomic = write_atomic(tmp_path / "atomic")
    b = _canonical(atomic)
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for p in atomic.rglob("*.*"):
            z.write(p, p.relative_to(atomic).as_posix())
    c = _canonical(wheel)
    cols = ["user_id", "item_id", "event", "ts", "rating"]
    pd.testing.assert_frame_equal(a.events[cols], b.events[cols])
    pd.testing.assert_frame_equal(b.events[cols], c.events[cols])
    assert a.items["category"].tolist() == b.items["category"].tolist()


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither u.data"):
        read_movielens(tmp_path / "empty")


@pytest.mark.skipif(not os.environ.get("VITRINE_RECBOLE_WHEEL"), reason="set VITRINE_RECBOLE_WHEEL to the wheel")
def test_real_movielens_100k_from_the_recbole_wheel() -> None:
    v = _canonical(Path(os.environ["VITRINE_RECBOLE_WHEEL"]))
    assert len(v.events) == 100_000 and v.rejected.empty
    assert v.users["user_id"].nunique() == 943 and v.items["item_id"].nunique() == 1682
