"""`cnnkit serve keys create|list|revoke` and the key store under it."""

from __future__ import annotations

import argparse
import json

import pytest

from cnnkit.cli import serve
from cnnkit.cli.main import main
from cnnkit.errors import GalleryError
from cnnkit.faces.gallery.keys import ApiKey, check_key, create_key, list_keys, revoke_key
from cnnkit.faces.gallery.store import GalleryStore


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`cnnkit serve ARGV` (what `python -m cnnkit.service ARGV` runs)."""
    code = main(["serve", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_key_alone_on_its_last_line(tmp_path, capsys):
    gallery = str(tmp_path / "g.db")
    code, out, err = run(capsys, "keys", "create", "--gallery", gallery, "--role", "write", "--label", "door kiosk")
    assert code == 0
    token = out.splitlines()[-1]
    assert token.startswith("ck_") and len(token) == 46 and " " not in token
    assert "write key #1 (door kiosk)" in err
    store = GalleryStore(gallery)
    try:
        assert check_key(store, token) == ApiKey(1, "write", "door kiosk", check_key(store, token).created_at)
    finally:
        store.close()


def test_list_and_revoke(tmp_path, capsys):
    gallery = str(tmp_path / "g.db")
    run(capsys, "keys", "create", "--gallery", gallery)
    run(capsys, "keys", "create", "--gallery", gallery, "--role", "write")
    code, out, _ = run(capsys, "keys", "revoke", "--gallery", gallery, "1")
    assert code == 0 and out.startswith("key #1 (read) revoked at ")
    code, out, _ = run(capsys, "keys", "list", "--gallery", gallery, "--json")
    listed = json.loads(out)
    assert [(k["id"], k["role"], k["active"]) for k in listed] == [(1, "read", False), (2, "write", True)]
    assert all("key" not in k and "hash" not in str(k) for k in listed)
    code, out, _ = run(capsys, "keys", "list", "--gallery", gallery)
    assert "#1    read" in out and "revoked" in out.splitlines()[0] and "active" in out.splitlines()[1]
    code, _, err = run(capsys, "keys", "revoke", "--gallery", gallery, "7")
    assert code == 2 and "no API key with id 7" in err


def test_keys_need_a_gallery_and_a_known_role(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CNNKIT_GALLERY", raising=False)
    code, _, err = run(capsys, "keys", "list")
    assert code == 2 and "--gallery" in err
    code, _, err = run(capsys, "keys", "list", "--gallery", str(tmp_path / "none.db"))
    assert code == 2 and "no such gallery" in err
    with pytest.raises(SystemExit):
        run(capsys, "keys", "create", "--gallery", str(tmp_path / "g.db"), "--role", "admin")


def test_gallery_may_come_before_the_action(tmp_path, capsys):
    gallery = str(tmp_path / "g.db")
    code, out, _ = run(capsys, "--gallery", gallery, "keys", "create")
    assert code == 0 and out.strip().startswith("ck_")


def test_registers_as_a_subcommand():
    parser = argparse.ArgumentParser(prog="cnnkit")
    serve.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "keys", "revoke", "--gallery", "g.db", "3"])
    assert args.run is serve.run_keys_revoke and args.key_id == 3 and args.gallery == "g.db"
    args = parser.parse_args(["serve", "--gallery", "g.db", "--workers", "2", "--port", "9000"])
    assert args.run is serve.run_serve and (args.workers, args.port) == (2, 9000)


def test_key_store_rules(tmp_path):
    store = GalleryStore(tmp_path / "g.db", create=True)
    try:
        token, key = create_key(store, "read")
        other, _ = create_key(store, "read")
        assert token != other and key.allows("read") and not key.allows("write")
        _, writer = create_key(store, "write")
        assert writer.allows("read") and writer.allows("write")
        with pytest.raises(ValueError, match="role must be one of"):
            create_key(store, "admin")  # type: ignore[arg-type]
        assert check_key(store, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert check_key(store, None) is None and check_key(store, "ck_" + "x" * 500) is None
        revoked = revoke_key(store, key.id)
        assert revoked.revoked_at and not revoked.allows("read") and check_key(store, token) is None
        assert revoke_key(store, key.id).revoked_at == revoked.revoked_at  # revoking twice changes nothing
        assert [k.id for k in list_keys(store, include_revoked=False)] == [2, 3]
        with pytest.raises(GalleryError, match="no API key with id 99"):
            revoke_key(store, 99)
    finally:
        store.close()
