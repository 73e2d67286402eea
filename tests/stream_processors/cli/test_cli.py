"""Every command helps a new user, and every failure is one line and exit code 1."""

import pytest

from stream_processors.cli import build_parser, main

COMMANDS = ["worker", "profile", "replay", "alerts", "triggers", "status", "ingest", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: driftline {command}")
    assert "DRIFTLINE_KAFKA_BOOTSTRAP" in out  # says where connections come from
    assert len(out.splitlines()) > 8


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert all(c in out for c in COMMANDS)
    assert "make stack- up" in out or "make stack-up" in out


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["worker", "--help"]])
def test_help_names_the_redis_cluster_setting_with_the_redis_url(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    out = " ".join(capsys.readouterr().out.split())
    assert "DRIFTLINE_REDIS_CLUSTER_NODES" in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "usage: driftline" in capsys.readouterr().err


def _one_line_error(capsys, argv, monkeypatch, env=None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("driftline: error: ") and err.count("\n") == 1, err
    return err


def test_redis_unreachable(capsys, monkeypatch):
    err = _one_line_error(capsys, ["status", "--model", "m"], monkeypatch,
                          {"DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "Redis is unreachable at redis://127.0.0.1:1/0" in err and "make stack-up" in err


def test_redis_cluster_unreachable(capsys, monkeypatch):
    """A cluster client connects as it is made: an unreachable startup node is the one-line error too."""
    err = _one_line_error(capsys, ["status", "--model", "m"], monkeypatch,
                          {"DRIFTLINE_REDIS_CLUSTER_NODES": "127.0.0.1:1",
                           "DRIFTLINE_REDIS_URL": "redis://bob:S3cretPassw0rd@localhost/0"})
    assert "Redis is unreachable at cluster 127.0.0.1:1" in err and "S3cretPassw0rd" not in err


def test_worker_with_redis_unreachable(capsys, monkeypatch):
    err = _one_line_error(capsys, ["worker", "--redis-url", "redis://127.0.0.1:1/0"], monkeypatch)
    assert "Redis is unreachable" in err


def test_kafka_unreachable(capsys, monkeypatch):
    err = _one_line_error(capsys, ["alerts"], monkeypatch, {"DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert "Kafka is unreachable at 127.0.0.1:1" in err


def test_bad_data_file(capsys, monkeypatch, tmp_path):
    err = _one_line_error(capsys, ["replay", "--model", "m", "--model-version", "1", "--data",
                                   str(tmp_path / "nope.csv")], monkeypatch)
    assert "does not exist" in err
    bad = tmp_path / "data.txt"
    bad.write_text("a,b\n1,2\n")
    err = _one_line_error(capsys, ["replay", "--model", "m", "--model-version", "1", "--data", str(bad)],
                          monkeypatch)
    assert "unsupported file type '.txt'" in err


def test_missing_column(capsys, monkeypatch, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,2\n")
    err = _one_line_error(capsys, ["replay", "--model", "m", "--model-version", "1", "--data", str(data)],
                          monkeypatch)
    assert "no prediction column" in err and "--prediction-column" in err


def test_bad_setting(capsys, monkeypatch):
    err = _one_line_error(capsys, ["status", "--model", "m"], monkeypatch, {"DRIFTLINE_BLOCK_SIZE": "many"})
    assert "DRIFTLINE_BLOCK_SIZE='many'" in err


def test_parser_builds():
    assert build_parser().prog == "driftline"


def test_ingest_start_up_mistakes_are_one_line(capsys, monkeypatch, tmp_path):
    err = _one_line_error(capsys, ["ingest", "--mapping", str(tmp_path / "absent.yaml")], monkeypatch)
    assert "cannot read the mapping file" in err
    (tmp_path / "m.yaml").write_text("models:\n  m: {colums: [a]}\n")
    err = _one_line_error(capsys, ["ingest", "--mapping", str(tmp_path / "m.yaml")], monkeypatch)
    assert "unknown keys ['colums']" in err
    err = _one_line_error(capsys, ["ingest"], monkeypatch, {"DRIFTLINE_INGEST_TLS_CERT": str(tmp_path / "c.pem"),
                                                            "DRIFTLINE_INGEST_TLS_KEY": str(tmp_path / "k.pem")})
    assert "cannot load the TLS certificate" in err
    (tmp_path / "token").write_text("\n")
    err = _one_line_error(capsys, ["ingest"], monkeypatch, {"DRIFTLINE_INGEST_TOKEN_FILE": str(tmp_path / "token")})
    assert "token file" in err and "is empty" in err


def test_ingest_help_offers_what_ingest_uses(capsys):
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--app-id" not in out and "--redis-url" not in out
    for name in ("DRIFTLINE_INGEST_MAX_BODY_BYTES", "DRIFTLINE_INGEST_MAX_ROWS", "DRIFTLINE_MAX_MESSAGE_BYTES",
                 "DRIFTLINE_INGEST_MAX_PENDING_EVENTS", "DRIFTLINE_INGEST_MAX_UNPAIRED_BYTES"):
        assert name in out.replace("- ", "-").replace("_ ", "_"), name


def test_ingest_token_file_not_utf8_is_one_line(capsys, monkeypatch, tmp_path):
    (tmp_path / "token").write_bytes(b"s3cret\xff\xfe\n")
    err = _one_line_error(capsys, ["ingest"], monkeypatch, {"DRIFTLINE_INGEST_TOKEN_FILE": str(tmp_path / "token")})
    assert "token file" in err and "not UTF-8" in err


def test_ingest_port_in_use_is_one_line(capsys, monkeypatch):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        err = _one_line_error(capsys, ["ingest", "--port", str(port)], monkeypatch,
                              {"DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})  # Kafka absent: served anyway
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


def _options(command):
    """(flags, dest, action) of every option of ``driftline <command>`` but --help."""
    import argparse

    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return [(a.option_strings, a.dest, a) for a in sub._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _sample(action, key_type):
    if action.choices:
        return list(action.choices)[-1]
    return {int: 4321, float: 0.125, str: "flag-value"}[key_type]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_flag_reaches_the_settings(command, tmp_path, monkeypatch):
    import typing

    from stream_processors.cli import settings_from
    from stream_processors.config import Settings, setting_keys

    # security settings are checked together: each flag is tried over an environment in which it is valid
    files = {}
    for name in ("env-secret", "flag-secret"):
        files[name] = tmp_path / name
        files[name].write_text("a-password-of-some-length\n")
    context = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw-pw-pw",
               "KAFKA_SSL_CERTFILE": files["env-secret"], "KAFKA_SSL_KEYFILE": files["env-secret"],
               "REDIS_URL": "rediss://env-host:1/0"}
    for name, value in context.items():
        monkeypatch.setenv(f"DRIFTLINE_{name}", str(value))
    values = Settings().values()
    for flags, dest, action in _options(command):
        if dest not in setting_keys():
            continue
        value = _sample(action, type(values[dest]))
        if dest == "redis_url":
            value = "rediss://flag-host:1/0"
        if dest.endswith("file"):
            value = str(files["flag-secret"])
        argv = [command, flags[0], str(value)] + _required(command)
        settings = settings_from(build_parser().parse_args(argv))
        assert settings.values()[dest] == value != values[dest], (command, flags)
    assert typing.get_type_hints(Settings)  # the keys come from real annotations


def _required(command):
    return {"profile": ["--model", "m", "--model-version", "1", "--data", "d.csv"],
            "replay": ["--model", "m", "--model-version", "1"], "status": ["--model", "m"],
            "triggers": ["--exec", "true"]}.get(command, [])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_other_flag_is_read_by_its_command(command):
    """A flag that is not a setting must be read as ``args.<dest>`` by the command's module, or it is ignored."""
    import ast
    import importlib
    import inspect

    from stream_processors.config import setting_keys

    source = inspect.getsource(importlib.import_module(f"stream_processors.cli.{command}"))
    read = {n.attr for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "args"}
    ignored = [flags for flags, dest, _ in _options(command) if dest not in setting_keys() and dest not in read]
    assert ignored == []
