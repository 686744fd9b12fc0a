"""build.py and tools/run_notebook.py: one fixture package per import form, each built, executed and its output checked.

Most fixtures run through a fast stand-in for a kernel (a fresh interpreter that writes the ``%%writefile`` cells
and execs the rest with ``__name__ == "__main__"``); a few run for real through nbclient + ipykernel.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import build
from build import BuildError, build_kernel, build_notebook_from_template, collect_modules
from tests.notebook_structure import STEPS, hidden, library_cells, visible_headings
from tools import run_notebook as rn

FIXTURES = Path(__file__).parent / "fixtures" / "bundle"
REPO = Path(__file__).resolve().parents[1]
TEMPLATE = """# %% tags=["parameters"]
x = 1
# %% [core]
# %%
from pkg.b import run
print(run(x))
print("_helper" in globals(), __name__)
"""
CONTEXT = {"commit": "abc1234", "build_command": "python build.py test", "build_time": "2026-01-01T00:00:00+00:00"}
KERNEL_RUNNER = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())
namespace = {"__name__": "__main__"}
for cell in json.load(open(sys.argv[1]))["cells"]:
    if cell["cell_type"] == "code":
        source = "".join(cell["source"])
        if source.startswith("%%writefile "):
            magic, _, body = source.partition("\n")
            with open(magic.split(maxsplit=1)[1], "w") as f:
                f.write(body)
        else:
            exec(compile(source, "<cell>", "exec"), namespace)
"""


@pytest.fixture(autouse=True)
def no_kaggle_credentials(tmp_path, monkeypatch):
    """No test sees the developer's Kaggle credentials or username."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))


def build_fixture(case: str, template: str = TEMPLATE, kernel: str = "train") -> nbformat.NotebookNode:
    return build_notebook_from_template(template, package_dir=FIXTURES / case / "pkg", package_name="pkg",
                                        kernel=kernel, context=CONTEXT, source_name="test.py.j2")


def run_fast(nb: nbformat.NotebookNode, cwd: Path) -> str:
    """Execute the code cells in a fresh interpreter the way a kernel would; return stdout."""
    cwd.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, cwd / "nb.ipynb")
    proc = subprocess.run([sys.executable, "-c", KERNEL_RUNNER, "nb.ipynb"], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stdout_of(nb: nbformat.NotebookNode) -> str:
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


# ----------------------------------------------------------------------------------------- import forms
@pytest.mark.parametrize("case, expected", [
    ("relative", "relative:1"), ("relative_alias", "alias:1"), ("from_dot", "from-dot:1"),
    ("absolute", "absolute:1"), ("import_as", "import-as:1"), ("main_block", "main-block:1"), ("order", "order:1"),
])
def test_fixture_builds_and_runs(case, expected, tmp_path):
    out = run_fast(build_fixture(case), tmp_path)
    assert out.splitlines() == [expected, "False __main__"]  # no module __main__ block ran, nothing leaked


def test_strings_survive_byte_for_byte_in_a_real_kernel(tmp_path):
    nb_path = tmp_path / "strings.ipynb"
    nbformat.write(build_fixture("strings"), nb_path)
    executed = rn.run_notebook(nb_path, tmp_path / "out.ipynb", cwd=tmp_path / "run", parameters={}, stream=False)
    for name in ("__init__.py", "a.py", "b.py"):
        assert (tmp_path / "run" / "pkg" / name).read_bytes() == (FIXTURES / "strings" / "pkg" / name).read_bytes()
    namespace: dict = {}
    exec((FIXTURES / "strings" / "pkg" / "a.py").read_text(), namespace)
    assert stdout_of(executed).splitlines()[-2:] == [namespace["f"](1), "False __main__"]


def test_private_names_do_not_leak_in_a_real_kernel(tmp_path, capsys):
    nb_path = tmp_path / "leak.ipynb"
    nbformat.write(build_fixture("leak"), nb_path)
    executed = rn.run_notebook(nb_path, tmp_path / "out.ipynb", cwd=tmp_path / "run", parameters={"x": 5})
    assert stdout_of(executed).splitlines()[-2:] == ["leak:ab:5", "False __main__"]
    assert "leak:ab:5" in capsys.readouterr().out  # streamed live to our stdout
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells == executed.cells


def test_cycle_is_refused_naming_both_modules():
    with pytest.raises(BuildError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        collect_modules(FIXTURES / "cycle" / "pkg", "pkg")


def test_forbidden_import_is_refused_naming_module_and_line():
    with pytest.raises(BuildError, match=r"pkg/a\.py line 3 imports 'requests', which is not available on Kaggle"):
        build_fixture("forbidden")


def test_template_import_is_refused_naming_cell_and_line():
    template = "# %% [markdown]\n# hi\n# %%\n!pip list\n%time 1\nimport os\nimport nbformat\n"
    with pytest.raises(BuildError, match=r"test.py.j2 cell 2 line 4 imports 'nbformat'"):
        build_fixture("relative", template)


def test_dunder_file_is_refused():
    with pytest.raises(BuildError, match=r"pkg/a\.py line 2 uses __file__"):
        build_fixture("dunder_file")


def test_modules_come_after_their_dependencies():
    modules = collect_modules(FIXTURES / "order" / "pkg", "pkg")
    assert [m.name for m in modules] == ["__init__", "z_base", "m_mid", "a_top", "b"]
    assert {m.name: m.deps for m in modules}["a_top"] == ("m_mid",)  # found inside a try block
    assert {m.name: m.deps for m in modules}["b"] == ("a_top",)  # found inside a function
    assert modules[1].relpath == "pkg/z_base.py"
    for case in ("relative", "from_dot", "absolute", "import_as", "leak"):
        names = [m.name for m in collect_modules(FIXTURES / case / "pkg", "pkg")]
        assert names == ["__init__", "a", "b"], case


# --------------------------------------------------------------------------------------- notebook format
def test_notebook_format_kernelspec_header_and_core_expansion():
    nb = build_fixture("relative")
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert nb.metadata.language_info == {"name": "python"}
    assert nb.cells[0].cell_type == "markdown" and "abc1234" in nb.cells[0].source
    assert "`python build.py test`" in nb.cells[0].source
    assert nb.cells[1].metadata.tags == ["parameters"] and nb.cells[1].source == "x = 1"
    sources = [c.source for c in nb.cells]
    assert sources[3] == 'import os\nos.makedirs("pkg", exist_ok=True)'
    assert sources[4] == "%%writefile pkg/__init__.py\n# (an empty module)\n"  # never an empty %%writefile body
    assert sources[5] == "%%writefile pkg/a.py\n" + (FIXTURES / "relative" / "pkg" / "a.py").read_text()
    assert sources[7].endswith('if m == "pkg" or m.startswith("pkg.")]:\n    del sys.modules[_name]\nimport pkg')
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_template_header_with_commit_is_kept_and_markdown_is_unprefixed():
    template = '# %% [markdown]\n# # Title\n# commit {{ commit }}\n#\n# %% tags=["parameters", "x"]\nx = 1\n'
    nb = build_fixture("relative", template)
    assert [c.source for c in nb.cells] == ["# Title\ncommit abc1234\n", "x = 1"]
    assert nb.cells[1].metadata.tags == ["parameters", "x"]


@pytest.mark.parametrize("template, message", [
    ("x = 1\n# %%\ny = 2\n", "text before the first '# %%'"),
    ("# %% [raw]\nx = 1\n", "unknown cell marker"),
    ("# %% tags=parameters\nx = 1\n", "unknown cell marker"),
    ("# %% tags=[1]\nx = 1\n", "tags must be a JSON list of strings"),
    ("# %% [core]\nimport os\n", "takes no text"),
    ("# %%\n{{ missing }}\n", "jinja2"),
    ("# %%\ndef f(:\n", "cell 1 line 1: syntax error"),
])
def test_malformed_templates_are_refused(template, message):
    with pytest.raises(BuildError, match=message):
        build_fixture("relative", template)


@pytest.mark.parametrize("code", ['m = timm.create_model("resnet18", pretrained=True)', "pretrained = True",
                                  "cfg.pretrained = True"])
def test_infer_kernel_refuses_pretrained_true(code):
    template = f"# %%\nimport timm\n{code}\n"
    with pytest.raises(BuildError, match=r"test.py.j2 cell 1 line 2 sets pretrained=True in the 'infer' kernel"):
        build_fixture("relative", template, kernel="infer")
    build_fixture("relative", template, kernel="train")  # training may download pretrained weights
    build_fixture("relative", "# %%\nimport timm\nm = timm.create_model('x', pretrained=False)\n", kernel="infer")


def test_notebook_of_one_megabyte_is_refused():
    with pytest.raises(BuildError, match=r"Kaggle refuses sources of 1 MB or more.*test.py.j2 cell 1"):
        build_fixture("relative", f"# %%\nblob = '{'x' * 1_000_000}'\n")


def test_credential_in_template_is_refused_without_printing_it(monkeypatch):
    key = "fake-kaggle-key-0123456789"
    monkeypatch.setenv("KAGGLE_KEY", key)
    with pytest.raises(BuildError, match=r"test.py.j2 cell 2 line 2 contains a Kaggle credential") as info:
        build_fixture("relative", f"# %%\nx = 1\n# %%\nimport os\ntoken = '{key}'\n")
    assert key not in str(info.value)


@pytest.mark.parametrize("text", ['# %% [markdown]\n# {"key": "0123456789abcdef0123456789abcdef"}\n',
                                  "# %%\nimport os\nos.environ['KAGGLE_KEY'] = 'x'\nKAGGLE_KEY = 'abc'\n",
                                  "# %%\nKAGGLE_API_TOKEN = \"abc\"\n"])
def test_credential_patterns_are_refused(text):
    with pytest.raises(BuildError, match="contains a Kaggle credential"):
        build_fixture("relative", text)


def test_credential_from_kaggle_json_in_a_module_is_refused(tmp_path, monkeypatch):
    key = "kaggle-json-secret-42"
    (tmp_path / "kaggle-config").mkdir()
    (tmp_path / "kaggle-config" / "kaggle.json").write_text(json.dumps({"username": "u", "key": key}))
    shutil.copytree(FIXTURES / "relative" / "pkg", tmp_path / "pkg")
    (tmp_path / "pkg" / "a.py").write_text(f"def f(x):\n    return '{key}'\n")
    with pytest.raises(BuildError, match=r"pkg/a\.py line 2 contains a Kaggle credential") as info:
        build_notebook_from_template(TEMPLATE, package_dir=tmp_path / "pkg", package_name="pkg", kernel="train",
                                     context=CONTEXT)
    assert key not in str(info.value)


# ------------------------------------------------------------------------------------ kernel + metadata
@pytest.mark.parametrize("title, slug", [
    ("digitkit train", "digitkit-train"), ("  Digit--Kit: Infer! ", "digit-kit-infer"),
    ("ResNet18 (5 folds)", "resnet18-5-folds"), ("digitkit_sweep", "digitkit-sweep"),
])
def test_slugify(title, slug):
    assert build.slugify(title) == slug


def test_owner_falls_back_to_placeholder_then_kaggle_json_then_env(tmp_path, monkeypatch, caplog):
    assert build.resolve_owner(None) == build.PLACEHOLDER_OWNER
    assert "no Kaggle username" in caplog.text
    (tmp_path / "home" / ".kaggle").mkdir()
    (tmp_path / "home" / ".kaggle" / "kaggle.json").write_text('{"username": "from-json", "key": "k"}')
    assert build.resolve_owner(None) == "from-json"
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")
    assert build.resolve_owner(None) == "from-env"
    assert build.resolve_owner("from-flag") == "from-flag"


def test_build_kernel_writes_notebook_and_metadata(tmp_path):
    repo = shutil.copytree(FIXTURES / "repo", tmp_path / "repo")
    path = build_kernel("train", repo=repo, out_dir=tmp_path / "build", owner="alice")
    assert path == tmp_path / "build" / "train" / "train.ipynb"
    metadata = json.loads(path.with_name("kernel-metadata.json").read_text())
    assert metadata["id"] == "alice/digitkit-train" and metadata["title"] == "digitkit train"
    assert metadata["code_file"] == "train.ipynb"
    assert metadata["dataset_sources"] == ["alice/my-digit-weights"]
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source.startswith("# digitkit train\nBuilt from commit unknown with `python build.py train`")
    assert len([c for c in nb.cells if c.source.startswith("Built by digitkit")]) == 0
    assert run_fast(nb, tmp_path / "run").strip() == "model=smallcnn"

    before = {p: p.read_bytes() for p in path.parent.iterdir()}
    (repo / "kernels" / "train.py.j2").write_text("# %%\nimport requests\n")
    with pytest.raises(BuildError, match="requests"):
        build_kernel("train", repo=repo, out_dir=tmp_path / "build", owner="alice")
    assert {p: p.read_bytes() for p in path.parent.iterdir()} == before  # nothing overwritten, no temp files


def test_build_cli_builds_all_kernels_and_default_weights_slug(tmp_path, capsys):
    repo = shutil.copytree(FIXTURES / "repo", tmp_path / "repo")
    (repo / "weights" / "dataset-metadata.json").unlink()
    assert build.main(["all", "--repo", str(repo), "--out", str(tmp_path / "out")]) == 0
    metadata = json.loads((tmp_path / "out" / "train" / "kernel-metadata.json").read_text())
    assert metadata["id"] == f"{build.PLACEHOLDER_OWNER}/digitkit-train"
    assert metadata["dataset_sources"] == [f"{build.PLACEHOLDER_OWNER}/digitkit-weights"]
    assert "train.ipynb (" in capsys.readouterr().out
    assert build.main(["infer", "--repo", str(repo), "--out", str(tmp_path / "out")]) == 1  # no template
    assert "kernels/infer.py.j2 is missing" in capsys.readouterr().err


def test_config_parameters_lists_every_field_with_its_default_comment_and_section_heading():
    source = ('@dataclasses.dataclass\nclass Config:\n    """Doc."""\n\n    # model\n    model: str = "smallcnn"\n'
              '    lr: float = 2e-3  # per step  # noqa: E501\n    pretrained: bool = False  # noqa: E501\n\n'
              '    def f(self):\n        x: int = 1\n')
    render = build.config_parameters(source)  # a linter's noqa stays in the library, out of the notebook
    assert render() == '# model\nmodel = "smallcnn"\nlr = 2e-3  # per step\npretrained = False'
    assert render(pretrained="None  # auto").splitlines()[-1] == "pretrained = None  # auto"
    with pytest.raises(BuildError, match="has no such field"):
        render(epoch="3")
    template = '# %% tags=["parameters"]\n{{ config_parameters(lr="0.1") }}\n'
    nb = build_notebook_from_template(template, package_dir=FIXTURES / "relative" / "pkg", package_name="pkg",
                                      kernel="train", context={**CONTEXT, "config_parameters": render})
    assert nb.cells[1].source == '# model\nmodel = "smallcnn"\nlr = 0.1\npretrained = False'


def test_metadata_with_a_wrong_id_is_refused():
    values = {"owner": "a", "slug": "digitkit-train", "title": "digitkit train", "code_file": "train.ipynb"}
    assert build.render_metadata('{"title": "{{ title }}"}', values)["id"] == "a/digitkit-train"
    with pytest.raises(BuildError, match="id is 'b/x'"):
        build.render_metadata('{"id": "b/x", "title": "{{ title }}"}', values)


# ------------------------------------------------------------------------------------------ run_notebook
def test_papermill_injects_parameters_after_the_parameters_cell(tmp_path):
    nb_path = tmp_path / "relative.ipynb"
    nbformat.write(build_fixture("relative"), nb_path)
    executed = rn.run_notebook(nb_path, tmp_path / "out.ipynb", cwd=tmp_path / "run", parameters={"x": 3},
                               stream=False)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    assert tags.index(["injected-parameters"]) == tags.index(["parameters"]) + 1
    assert executed.cells[tags.index(["injected-parameters"])].source.splitlines()[-1] == "x = 3"
    assert executed.metadata.papermill.parameters == {"x": 3}  # papermill ran it, as Kaggle does
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['epoch'\]; the parameters cell defines \['x'\]"):
        rn.check_parameters(build_fixture("relative"), {"epoch": 3})


def test_parameter_names_and_cli_values():
    assert rn.parameter_names("a = 1\nb: int = 2\nc, d = 3, 4\n# e = 5\n") == ["a", "b", "c", "d"]
    assert rn.parse_parameter("model=smallcnn") == ("model", "smallcnn")
    assert rn.parse_parameter("epochs=3") == ("epochs", 3)
    assert rn.parse_parameter("augment=False") == ("augment", False)
    assert rn.parse_parameter("folds=[0, 1]") == ("folds", [0, 1])


def _notebook(tmp_path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(build.KERNELSPEC)})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    return tmp_path / "nb.ipynb"


def test_kernel_runs_with_the_callers_interpreter(tmp_path):
    path = _notebook(tmp_path, "import sys, matplotlib\nprint(sys.executable)\nprint(matplotlib.get_backend())")
    executed = rn.run_notebook(path, tmp_path / "out.ipynb", cwd=tmp_path / "run", parameters={}, stream=False)
    assert stdout_of(executed).splitlines() == [sys.executable, "module://matplotlib_inline.backend_inline"]


def test_failure_carries_the_error_and_saves_the_notebook(tmp_path, capsys):
    path = _notebook(tmp_path, "print('before')", "def boom():\n    raise ValueError('boom 42')\nboom()", "print(1)")
    with pytest.raises(rn.NotebookFailed) as info:
        rn.run_notebook(path, tmp_path / "out.ipynb", cwd=tmp_path / "run", parameters={}, stream=False)
    failure = info.value
    assert (failure.cell_index, failure.ename, failure.evalue) == (1, "ValueError", "boom 42")
    assert "boom()" in failure.traceback and "\x1b[" not in failure.traceback
    saved = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert saved[0].outputs[0].text == "before\n" and saved[1].outputs[-1].output_type == "error"
    assert str(failure) == (f"cell In [2] ('def boom():') failed: ValueError: boom 42 — executed notebook: "
                            f"{tmp_path / 'out.ipynb'}")  # one line

    assert rn.main([str(path), "--out", str(tmp_path / "cli.ipynb"), "--cwd", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "cell In [2]" in err and "ValueError: boom 42" in err and str(tmp_path / "cli.ipynb") in err


def test_cli_refuses_unknown_parameter_and_a_git_checkout(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nbformat.write(build_fixture("relative"), path)
    assert rn.main([str(path), "--out", str(tmp_path / "o.ipynb"), "--cwd", str(tmp_path), "-p", "epoch=3"]) == 2
    assert "unknown parameter(s) ['epoch']" in capsys.readouterr().err
    (tmp_path / "checkout" / ".git").mkdir(parents=True)
    with pytest.raises(ValueError, match="git checkout"):
        rn.run_notebook(path, tmp_path / "o.ipynb", cwd=tmp_path / "checkout", parameters={})


def test_each_notebook_carries_only_the_core_modules_it_imports(tmp_path):
    """Each notebook carries the modules its cells import, closed under their imports, and no others."""
    modules = {m.name: m for m in collect_modules(REPO / "core", "core")}
    written = {}
    for kernel in ("train", "infer", "sweep", "ensemble"):
        nb = nbformat.read(build_kernel(kernel, repo=REPO, out_dir=tmp_path, owner="tester"), as_version=4)
        written[kernel] = {c.source.split("\n", 1)[0].split("/")[-1][:-3] for c in nb.cells
                           if c.source.startswith("%%writefile core/")}
        for name in written[kernel]:  # closed under imports: nothing the notebook runs is missing
            assert set(modules[name].deps) <= written[kernel], (kernel, name)
    # inference needs no trainer, launch, SWA, scheduler, sweep or ensemble code: exactly the modules it imports
    assert written["infer"] == {"__init__", "atomic", "augment", "checkpoint", "config", "data", "device", "inference",
                                "families", "manifest", "models", "paths", "plots", "predict", "run_state", "submission", "tta"}
    assert {"sweep", "lr_scaling"} <= written["sweep"] and {"ensemble", "groups"} <= written["ensemble"]
    assert set(modules) == set().union(*written.values())  # every module serves some notebook


def test_concept_order_covers_every_core_module():
    """A new core/ module must get its place in build.CONCEPT_ORDER (else it would silently go last)."""
    names = {m.name for m in collect_modules(REPO / "core", "core")}
    assert names <= set(build.CONCEPT_ORDER), f"add {sorted(names - set(build.CONCEPT_ORDER))} to build.CONCEPT_ORDER"
    assert len(set(build.CONCEPT_ORDER)) == len(build.CONCEPT_ORDER)


@pytest.mark.parametrize("kernel", build.KERNELS)
def test_library_cells_are_hidden_ordered_by_concept_and_named_in_one_markdown_line(tmp_path, kernel):
    nb = nbformat.read(build_kernel(kernel, repo=REPO, out_dir=tmp_path, owner="tester"), as_version=4)
    written = [c.source.split("\n", 1)[0].split("/")[-1][:-3] for c in nb.cells
               if c.source.startswith("%%writefile core/")]
    assert written == [n for n in build.CONCEPT_ORDER if n in written]
    first = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%%writefile core/"))
    library = nb.cells[first - 1:first + len(written) + 1]  # makedirs, the modules, the import
    assert library[0].source.startswith("import os\nos.makedirs(") and library[-1].source.endswith("import core")
    for cell in library:
        assert cell.metadata["_kg_hide-input"] is True and cell.metadata["_kg_hide-output"] is True, cell.source[:40]
        assert cell.metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}, cell.source[:40]
    intro = nb.cells[first - 2]
    assert intro.cell_type == "markdown" and "\n" not in intro.source and "hidden cells below" in intro.source
    assert all(f"{name}," in intro.source or f"{name};" in intro.source for name in written if name != "__init__")
    assert "and `__init__`" in intro.source
    hidden = [c for c in nb.cells if c.metadata.get("_kg_hide-input")]
    assert hidden == library  # the template's own cells stay visible


@pytest.mark.parametrize("kernel", build.KERNELS)
def test_each_notebook_shows_its_recipe_as_numbered_steps_after_its_parameters(tmp_path, kernel):
    """What a user scrolls through: the title, the parameters, one line about the hidden library, then the steps."""
    nb = nbformat.read(build_kernel(kernel, repo=REPO, out_dir=tmp_path, owner="tester"), as_version=4)
    assert visible_headings(nb) == STEPS[kernel]
    assert nb.cells[0].source.startswith("# digitkit · ") and nb.cells[1].metadata["tags"] == ["parameters"]
    assert all(hidden(c) for c in library_cells(nb))
    steps = [c for c in nb.cells[2:] if c.cell_type == "code" and not hidden(c)]
    assert all(len(c.source.splitlines()) <= 25 for c in steps)  # short calls, the library does the work
    parameters = nb.cells[1].source
    assert "make " not in parameters and "README" not in parameters  # a Kaggle user has neither


def test_only_the_library_cells_are_hidden_and_tags_stay_as_they_are():
    nb = build_fixture("relative")
    assert nb.cells[1].metadata == {"tags": ["parameters"]}
    assert [c.source.split("\n")[0] for c in nb.cells if c.metadata.get("_kg_hide-input")] == [
        "import os", "%%writefile pkg/__init__.py", "%%writefile pkg/a.py", "%%writefile pkg/b.py", "import importlib, sys"]


def test_needed_modules_follows_imports_from_the_roots():
    modules = collect_modules(FIXTURES / "order" / "pkg", "pkg")
    everything = [m.name for m in modules]
    assert [m.name for m in build.needed_modules(modules, set())] == ["__init__"]
    assert [m.name for m in build.needed_modules(modules, {"m_mid"})] == ["__init__", "z_base", "m_mid"]
    for module in modules:
        names = [m.name for m in build.needed_modules(modules, {module.name})]
        assert module.name in names and set(module.deps) <= set(names)
        assert names == [n for n in everything if n in names]  # dependency order kept


def test_papermill_sees_every_parameter_of_the_built_notebooks(tmp_path):
    """papermill skips a parameters-cell line holding more than one '=' (e.g. a comment '# 0 = off'), so
    `papermill --help-notebook` and its unknown-parameter warning would miss it: comments say ':' instead."""
    import papermill

    readable_only_by_us = {"sweep": {"budget"}}  # its value is "epochs=E" | "steps=S"
    for kernel in ("train", "infer", "sweep", "ensemble"):
        path = build_kernel(kernel, repo=REPO, out_dir=tmp_path, owner="tester")
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        seen = set(papermill.inspect_notebook(str(path)))
        assert set(rn.parameter_names(cell.source)) - seen == readable_only_by_us.get(kernel, set()), kernel


def test_each_notebooks_defaults_are_its_settings_classes(tmp_path):
    """One home per default: a notebook's parameters cell is rendered from the dataclass its cells read it into."""
    import dataclasses

    from core.config import Config
    from core.ensemble import EnsembleSettings
    from core.inference import InferenceSettings
    from core.lr_scaling import AnalysisSettings
    from core.sweep import SweepGrid

    def defaults(kernel: str) -> dict:
        nb = nbformat.read(build_kernel(kernel, repo=REPO, out_dir=tmp_path, owner="tester"), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        values: dict = {}
        exec(cell.source, {}, values)  # literals only: the cell papermill overrides
        return values

    def fields(cls, rename=None) -> dict:  # a tuple default is shown as the list a user edits
        return {(rename or {}).get(f.name, f.name): list(f.default) if isinstance(f.default, tuple) else f.default
                for f in dataclasses.fields(cls)}

    assert fields(Config).items() <= defaults("train").items()
    assert fields(InferenceSettings).items() <= defaults("infer").items()
    assert fields(EnsembleSettings).items() <= defaults("ensemble").items()
    sweep = defaults("sweep")
    assert fields(SweepGrid, {"fold": "sweep_fold"}).items() <= sweep.items()
    assert fields(AnalysisSettings).items() <= sweep.items()
