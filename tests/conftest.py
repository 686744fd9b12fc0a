"""Shared test set-up: no hub access, no GPU, small thread pools."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


# --- the Kaggle stub (tests/kaggle_stub.py): the real kaggle CLI talks to it through HTTP_PROXY ---------------------
import pytest  # noqa: E402

FAKE_KAGGLE_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 32 hex digits, like a real key; must never appear in any output


@pytest.fixture
def kaggle_stub(tmp_path_factory, monkeypatch):
    """A started KaggleStub; ``.env`` is the whole environment for the CLI, also applied to this process.

    The environment points the CLI at the stub (KAGGLE_API_ENVIRONMENT=LOCALHOST + HTTP_PROXY, empty NO_PROXY), gives
    it fake credentials (KAGGLE_USERNAME=stubuser, KAGGLE_KEY=FAKE_KAGGLE_KEY) and puts HOME, KAGGLE_CONFIG_DIR and
    TMPDIR in temporary folders, so no real ~/.kaggle is read or written.
    """
    from tests.kaggle_stub import KaggleStub

    root = tmp_path_factory.mktemp("kaggle-env")
    for name in ("home", "config", "tmp"):
        (root / name).mkdir(mode=0o700)
    stub = KaggleStub()
    proxy = f"http://127.0.0.1:{stub.start()}"
    overrides = {
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "",
        "no_proxy": "", "KAGGLE_USERNAME": "stubuser", "KAGGLE_KEY": FAKE_KAGGLE_KEY, "HOME": str(root / "home"),
        "KAGGLE_CONFIG_DIR": str(root / "config"), "TMPDIR": str(root / "tmp"), "DIGITKIT_POLL_DELAY": "0.05",
    }
    dropped = [key for key in os.environ if key.startswith("KAGGLE_") or key.startswith("VERBOSE")
               or key.lower() in ("https_proxy", "all_proxy")]
    for key in dropped:
        monkeypatch.delenv(key, raising=False)
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)
    stub.env = {**{k: v for k, v in os.environ.items()}, **overrides}
    stub.root = root
    try:
        yield stub
    finally:
        stub.stop()
