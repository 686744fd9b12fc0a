

import pytest
import torch
import torch.nn as nn

from core.checkpoint import CheckpointError, load_weights, read_state_dict
from core.manifest import ManifestError, read_manifest, verify_manifest, write_manifest


def test_manifest_hashes_and_detects_tampering(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"weights")
    (tmp_path / "oof.csv").write_text("x\n")
    write_manifest(tmp_path, {"model": {"name": "m"}, "n_folds": 1, "folds": []}, ["a.pth", "oof.csv"])
    assert set(verify_manifest(tmp_path)["files"]) == {"a.pth", "oof.csv"}
    (tmp_path / "a.pth").write_bytes(b"weightz")
    with pytest.raises(ManifestError, match="a.pth: sha256 differs"):
        verify_manifest(tmp_path)
    (tmp_path / "oof.csv").unlink()
    with pytest.raises(ManifestError, match="oof.csv: missing"):
        verify_manifest(tmp_path)


def test_missing_or_foreign_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"hello": 1}')
    with pytest.raises(ManifestError, match="'model' is missing"):
        read_manifest(tmp_path)


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(path)


def test_truncated_file_is_explained(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(nn.Linear(4, 2).state_dict(), path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated"):
        read_state_dict(path)


def test_other_architecture_is_explained_and_dataparallel_prefix_accepted(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({f"module.{k}": v for k, v in nn.Linear(4, 2).state_dict().items()}, path)
    load_weights(nn.Linear(4, 2), path)  # the module. prefix from DataParallel is stripped
    with pytest.raises(CheckpointError, match=r"not for tiny at this input size .*another shape"):
        load_weights(nn.Linear(8, 2), path, model_name="tiny")
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(nn.Sequential(nn.Linear(4, 2)), path)
    with pytest.raises(CheckpointError, match="weights file missing"):
        read_state_dict(tmp_path / "nope.pth")

