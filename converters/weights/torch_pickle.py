"""Read ``torch.save`` state dicts into numpy arrays without PyTorch.

Handles the legacy (pre-1.6, non-zip) format the PyPI Lite weight packages use, and the zip
format. Only tensors, containers and plain values are reconstructed; any other class in the
pickle is refused, so loading a file never runs code from it.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_DTYPE_NAMES = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
                "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8,
                "uint8": np.uint8, "bool": np.bool_}


class TorchPickleError(ValueError):
    """The file is not a readable torch state dict."""


class _StorageType:
    def __init__(self, dtype: Any):
        self.dtype = np.dtype(dtype)


class _LazyTensor:
    """A tensor whose storage bytes come later in the file (legacy format)."""

    def __init__(self, storage: tuple, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        key, dtype = self.storage
        flat = storages[key]
        if not self.size:
            return np.array(flat[self.offset], dtype=dtype)
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


class _Unpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
        raise TorchPickleError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchPickleError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(storage_type)
        return (key, dtype)


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise(storages)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storages) for v in obj)
    return obj


def _collect_storages(obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, _LazyTensor):
        out[obj.storage[0]] = obj.storage[1]
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_storages(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_storages(v, out)


def _load_legacy(f: BinaryIO) -> Any:
    if pickle.load(f) != _LEGACY_MAGIC:
        raise TorchPickleError("not a torch.save file (bad magic number)")
    pickle.load(f)  # protocol version
    pickle.load(f)  # sys info
    obj = _Unpickler(f).load()
    keys = pickle.load(f)
    dtypes: dict[str, Any] = {}
    _collect_storages(obj, dtypes)
    storages = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(dtypes.get(str(key), np.float32))
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise TorchPickleError("truncated torch.save file")
        storages[str(key)] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return _materialise(obj, storages)


def _load_zip(path_or_file: Any) -> Any:
    with zipfile.ZipFile(path_or_file) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise TorchPickleError("zip file without data.pkl is not a torch.save file")
        root = pkl[: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(z.read(pkl))).load()
        dtypes: dict[str, Any] = {}
        _collect_storages(obj, dtypes)
        storages = {k: np.frombuffer(z.read(f"{root}data/{k}"), dtype=np.dtype(d).newbyteorder("<"))
                    for k, d in dtypes.items()}
    return _materialise(obj, storages)


def load_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a ``torch.save``-d state dict as ``{name: np.ndarray}``.

    Raises:
        FileNotFoundError: no such file.
        TorchPickleError: not a torch state dict, truncated, or holding unsupported objects.
    """
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(f)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError) as e:
        raise TorchPickleError(f"cannot read {path} as a torch state dict: {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise TorchPickleError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return collections.OrderedDict((k, v) for k, v in obj.items() if isinstance(v, np.ndarray))
