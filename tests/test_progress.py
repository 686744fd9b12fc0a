"""core.progress: a bar only where a person watches it live."""
import importlib.util
import io
import sys

from core import progress as progress_module
from core.progress import progress, watched


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_a_pipe_does_not(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert watched() and not progress(3, desc="x").disable
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a fold worker's pipe, a CI log
    assert not watched() and progress(3, desc="x").disable


def test_a_kernel_without_widgets_saves_no_text_frames(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(progress_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    assert not watched()
    monkeypatch.setattr(progress_module.importlib.util, "find_spec", lambda name, *a: object())
    assert watched()  # an interactive session with ipywidgets: a widget


def test_a_saved_kaggle_version_gets_no_widgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.setattr(progress_module.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")  # "Save Version": papermill, nobody watching
    assert not watched()
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert watched()
