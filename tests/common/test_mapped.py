import zipfile

import numpy as np
import pytest

from common.mapped import MAP_MIN_BYTES, mapped, open_npy, open_npz
from recsys.channels import ChannelConfig, Channels


def test_npz_members_are_mapped_copy_on_write_and_equal_to_np_load(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {"c_order": rng.standard_normal((300, 70)).astype(np.float32),
              "fortran": np.asfortranarray(rng.integers(0, 9, (200, 90))),
              "tiny": np.arange(5), "text": np.array('{"a": 1}')}
    np.savez(tmp_path / "a.npz", **arrays)
    got = open_npz(tmp_path / "a.npz")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
    assert mapped(got["c_order"]) and mapped(got["fortran"])
    assert not mapped(got["tiny"])  # under MAP_MIN_BYTES: read
    got["c_order"][0, 0] = 123.0  # a private page: the file and a second mapping keep the old value
    assert open_npz(tmp_path / "a.npz")["c_order"][0, 0] == arrays["c_order"][0, 0]


def test_compressed_members_are_read_and_a_plain_read_is_not_mapped(tmp_path) -> None:
    x = np.arange(MAP_MIN_BYTES, dtype=np.float64)
    np.savez_compressed(tmp_path / "z.npz", x=x)
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        assert zf.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    got = open_npz(tmp_path / "z.npz")["x"]
    assert not mapped(got) and np.array_equal(got, x)
    np.savez(tmp_path / "s.npz", x=x)
    assert not mapped(open_npz(tmp_path / "s.npz", mmap=False)["x"])


def test_npy_is_mapped_copy_on_write(tmp_path) -> None:
    np.save(tmp_path / "v.npy", np.ones((100, 4), np.float32))
    v = open_npy(tmp_path / "v.npy")
    v[0] = 5
    assert mapped(v) and np.load(tmp_path / "v.npy")[0, 0] == 1


def test_channels_round_trip_mapped_and_grow_privately(tmp_path) -> None:
    rng = np.random.default_rng(1)
    ch = Channels(rng.integers(-1, 500, (500, 40)).astype(np.int32), rng.random((500, 40), np.float32),
                  rng.integers(0, 500, (3, 20)).astype(np.int32), rng.random(500, np.float32), ChannelConfig())
    ch.save(tmp_path / "channels.npz")
    back = Channels.load(tmp_path / "channels.npz", mmap=True)
    assert mapped(back.neighbours) and back.config == ch.config
    for k in ("neighbours", "weights", "category_top", "popularity"):
        assert np.array_equal(getattr(back, k), getattr(ch, k)), k
    back.append_item()
    assert back.neighbours.shape == (501, 40) and (back.neighbours[-1] == -1).all()


def test_object_members_are_refused_with_the_member_named(tmp_path) -> None:
    big = np.array([str(i) for i in range(MAP_MIN_BYTES)], dtype=object)
    np.savez(tmp_path / "o.npz", names=big)
    with pytest.raises(ValueError, match="names"):
        open_npz(tmp_path / "o.npz")
