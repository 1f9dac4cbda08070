"""The torch-free reader of legacy .pth files: real weights, hand-built files, hostile files."""
import collections
import io
import pickle
import struct

import numpy as np
import pytest

from model_zoo.bundled import WEIGHTS_SHA256, weights_path
from model_zoo.torch_legacy import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    TorchFileError,
    load_state_dict,
    parse_state_dict,
)


# ------------------------------------------------------------ a writer for test files
class _Global:
    """A pickled reference to ``module.name`` without importing it (torch is not installed)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce only checks that it is callable
        raise AssertionError("never called")


class _Storage:
    def __init__(self, key: str, type_name: str, data: np.ndarray) -> None:
        self.key, self.type_name, self.data = key, type_name, data


class _Tensor:
    def __init__(self, storage, offset, size, stride) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (
            _Global("torch._utils", "_rebuild_tensor_v2"),
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()),
        )


class _Evil:
    def __init__(self, module, name, args) -> None:
        self.module, self.name, self.args = module, name, args

    def __reduce__(self):
        return _Global(self.module, self.name), self.args


class _Writer(pickle._Pickler):
    """torch's legacy ``_save``: GLOBALs written by hand, storages as persistent ids."""

    def __init__(self, file, storages) -> None:
        super().__init__(file, protocol=2)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            self.storages[obj.key] = obj
            return ("storage", _Global("torch", obj.type_name), obj.key, "cpu", obj.data.size, None)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(b"c" + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def write_legacy(state) -> bytes:
    buf = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                   {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buf, protocol=2)
    storages: dict[str, _Storage] = {}
    _Writer(buf, storages).dump(state)
    keys = sorted(storages)
    pickle.dump(keys, buf, protocol=2)
    for key in keys:
        buf.write(struct.pack("<q", storages[key].data.size))
        buf.write(storages[key].data.astype(storages[key].data.dtype.newbyteorder("<")).tobytes())
    return buf.getvalue()


# ------------------------------------------------------------ known answers
def test_hand_built_file_with_views_offsets_and_shared_storage():
    base = np.arange(24, dtype=np.float32)
    s_float = _Storage("140001", "FloatStorage", base)
    s_long = _Storage("140002", "LongStorage", np.array([7, -3], dtype=np.int64))
    s_half = _Storage("140003", "HalfStorage", np.array([0.5, -2.0], dtype=np.float16))
    state = collections.OrderedDict(
        matrix=_Tensor(s_float, 0, (4, 6), (6, 1)),
        transposed=_Tensor(s_float, 0, (6, 4), (1, 6)),  # non-contiguous view of the same storage
        tail=_Tensor(s_float, 20, (2, 2), (2, 1)),  # storage offset
        count=_Tensor(s_long, 1, (), ()),  # 0-d int64 (num_batches_tracked)
        half=_Tensor(s_half, 0, (2,), (1,)),
    )
    out = parse_state_dict(write_legacy(state))
    assert list(out) == ["matrix", "transposed", "tail", "count", "half"]
    np.testing.assert_array_equal(out["matrix"], base.reshape(4, 6))
    np.testing.assert_array_equal(out["transposed"], base.reshape(4, 6).T)
    np.testing.assert_array_equal(out["tail"], [[20, 21], [22, 23]])
    assert out["count"].dtype == np.int64 and out["count"].shape == () and out["count"] == -3
    assert out["half"].dtype == np.float16 and out["half"].tolist() == [0.5, -2.0]
    out["matrix"][0, 0] = 99  # arrays are independent copies
    assert out["transposed"][0, 0] == 0


def test_real_efficientnet_lite0_weights():
    state = load_state_dict(weights_path(), sha256=WEIGHTS_SHA256)
    assert len(state) == 296
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(counters) == 49  # stem, head and 3 per block except the first (no expansion)
    assert all(state[k].dtype == np.int64 and state[k].shape == () for k in counters)
    floats = [v for k, v in state.items() if k not in counters]
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in floats)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(state[k].min() >= 0 for k in state if k.endswith("running_var"))  # some are dead


# ------------------------------------------------------------ refusals
def test_wrong_hash_is_refused_before_reading(tmp_path):
    with pytest.raises(TorchFileError, match="sha256"):
        load_state_dict(weights_path(), sha256="0" * 64)


def test_missing_zip_and_foreign_files(tmp_path):
    with pytest.raises(TorchFileError, match="cannot read"):
        load_state_dict(tmp_path / "nope.pth")
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(TorchFileError, match="zip-format"):
        load_state_dict(tmp_path / "zip.pth")
    (tmp_path / "other.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(TorchFileError, match="magic number"):
        load_state_dict(tmp_path / "other.pth")


@pytest.mark.parametrize("cut", [0.001, 0.5, 0.999])
def test_truncated_real_file(tmp_path, cut):
    data = weights_path().read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(TorchFileError, match="truncated"):
        load_state_dict(path)


def test_garbled_real_file(tmp_path):
    data = bytearray(weights_path().read_bytes())
    rng = np.random.default_rng(0)
    data[300:3000] = rng.integers(0, 256, 2700, dtype=np.uint8).tobytes()  # inside the pickle
    path = tmp_path / "garbled.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(TorchFileError, match="corrupt"):
        load_state_dict(path)


def test_trailing_bytes_are_refused():
    s = _Storage("1", "FloatStorage", np.zeros(2, np.float32))
    data = write_legacy({"w": _Tensor(s, 0, (2,), (1,))})
    assert parse_state_dict(data)["w"].tolist() == [0.0, 0.0]
    with pytest.raises(TorchFileError, match="unexpected bytes"):
        parse_state_dict(data + b"\0")


def test_out_of_bounds_view_is_refused():
    s = _Storage("1", "FloatStorage", np.zeros(4, np.float32))
    with pytest.raises(TorchFileError, match="outside its storage"):
        parse_state_dict(write_legacy({"w": _Tensor(s, 2, (2, 2), (2, 1))}))


def test_forbidden_global_is_refused_and_never_called(tmp_path):
    marker = tmp_path / "pwned"
    state = collections.OrderedDict(evil=_Evil("os", "system", (f"touch {marker}",)))
    with pytest.raises(TorchFileError, match=r"forbidden global os\.system"):
        parse_state_dict(write_legacy(state))
    assert not marker.exists()
    # a global in the header pickles is refused too (none is allowed there)
    buf = io.BytesIO()
    pickle.dump(MAGIC_NUMBER, buf, protocol=2)
    pickle.dump(PROTOCOL_VERSION, buf, protocol=2)
    pickle.dump(collections.OrderedDict(little_endian=True), buf, protocol=2)
    with pytest.raises(TorchFileError, match=r"forbidden global collections\.OrderedDict"):
        parse_state_dict(buf.getvalue())
