"""models.config: TF Serving's own proto parses it, every version is listed, stable labels, one-line refusals."""

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfpanc import cli
from tfpanc.export import models_config


def _base(root, layout):
    """Fake exports: ``{name: [version folder names]}``; a name ending in '-' gets no saved_model.pb."""
    for name, versions in layout.items():
        for v in versions:
            folder = root / name / v.rstrip("-")
            folder.mkdir(parents=True)
            if not v.endswith("-"):
                (folder / "saved_model.pb").write_bytes(b"")
    return root


def _parse(path):
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def _invoke(*argv):
    return cli.invoke(models_config.define_flags, models_config.main, list(argv))


def test_every_model_and_version_listed_with_stable_label(tmp_path, capsys):
    # A space and a quote in the path, a version 10 after 9 (numeric, not text, order), an unfinished
    # version, an export in progress, a folder with no versions and a stray file.
    base = _base(tmp_path / 'my "serving" base', {"tfpanc_cai": ["1", "2", "10", "9"], "zhou": ["3", "4-"],
                                                  "notes": []})
    (base / "zhou" / "5.partial").mkdir()
    (base / "README").write_text("not a model")
    assert _invoke(str(base), "--stable=tfpanc_cai:2") == 0, capsys.readouterr().err
    config = _parse(base / "models.config")
    models = {c.name: c for c in config.model_config_list.config}
    assert sorted(models) == ["tfpanc_cai", "zhou"]
    cai, zhou = models["tfpanc_cai"], models["zhou"]
    assert list(cai.model_version_policy.specific.versions) == [1, 2, 9, 10]
    assert list(zhou.model_version_policy.specific.versions) == [3]
    assert dict(cai.version_labels) == {"stable": 2} and dict(zhou.version_labels) == {"stable": 3}
    assert cai.base_path == str((base / "tfpanc_cai").resolve()) and cai.model_platform == "tensorflow"
    out = capsys.readouterr().out
    assert f"skipped {base / 'zhou' / '4'}: not a version with a saved_model.pb" in out
    assert "tfpanc_cai: versions 1, 2, 9, 10 (stable 2)" in out and "(2 models)" in out
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_serving_path_and_output_and_rewrite(tmp_path, capsys):
    base = _base(tmp_path / "serving", {"tfpanc_cai": ["1"]})
    output = tmp_path / "conf" / "tf.config"
    assert _invoke(str(base), f"--output={output}", "--serving_path=/models/") == 0, capsys.readouterr().err
    assert _parse(output).model_config_list.config[0].base_path == "/models/tfpanc_cai"
    assert not (base / "models.config").exists()
    _base(base, {"tfpanc_cai": ["2"], "other": ["1"]})
    assert _invoke(str(base), f"--output={output}", "--serving_path=/models") == 0  # a config is replaced
    models = {c.name: c for c in _parse(output).model_config_list.config}
    assert dict(models["tfpanc_cai"].version_labels) == {"stable": 2} and "other" in models


@pytest.mark.parametrize("layout, argv, expected", [
    ({}, [], "holds no exported models"),
    ({"tfpanc_cai": ["1-"]}, [], "holds no exported models"),
    ({"tfpanc_cai": ["1"]}, ["--stable=tfpanc_cai:3"], "error: --stable: tfpanc_cai has versions [1], not 3"),
    ({"tfpanc_cai": ["1"]}, ["--stable=zhou:1"], "error: --stable: no model 'zhou' under the base folder"),
    ({"tfpanc_cai": ["1"]}, ["--stable=tfpanc_cai"], "error: --stable: expected NAME:VERSION"),
    ({"tfpanc_cai": ["1", "2"]}, ["--stable=tfpanc_cai:1", "--stable=tfpanc_cai:2"], "labelled twice"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, layout, argv, expected):
    base = _base(tmp_path / "base", layout)
    base.mkdir(exist_ok=True)
    assert _invoke(str(base), *argv) == cli.USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (base / "models.config").exists()


def test_output_that_is_not_a_config_is_kept(tmp_path, capsys):
    base = _base(tmp_path / "base", {"tfpanc_cai": ["1"]})
    (tmp_path / "notes.txt").write_text("my notes")
    for argv, expected in ([f"--output={tmp_path / 'notes.txt'}"], "is not a TF Serving model config"), \
            ([f"--output={base}"], "is a folder"), ([], None):
        rc = _invoke(str(tmp_path / "missing") if expected is None else str(base), *argv)
        err = capsys.readouterr().err.strip()
        assert rc == cli.USER_ERROR and "\n" not in err
        assert (expected or "no such folder") in err
    assert (tmp_path / "notes.txt").read_text() == "my notes"
    assert _invoke() == cli.USER_ERROR and "give one BASE folder" in capsys.readouterr().err
