"""The README's two set-up commands from a fresh clone, as a user without root: time, venv size, outcome.

    python -m bench.cli.fresh_setup [--user newcomer] [--commands 1,2]

Clones this repository (its committed HEAD) into a new folder owned by
`--user` beside a link to ../shared (as a checkout next to the shared data
has it), copies the pip configuration this machine's root uses (the package
index is local here) into that user's home, and runs each of the README's
first two commands there, in its own fresh clone, as that user (`runuser`;
this script itself runs as root to create the user), with that user's
~/.cache emptied first (no pip cache, no weights: a new machine). Recorded per command:
wall time, exit status, size of the `.venv` it made, the last lines of its
output (the demo's summary; pytest's counts and skip reasons). Results in
bench/results/fresh_setup.json.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import ROOT, save_result


def readme_commands() -> list[str]:
    """The README's first code block: its lines are the set-up commands."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", name], check=True)
        return pwd.getpwnam(name)


def folder_mib(path: Path) -> float:
    done = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return float(done.stdout.split()[0]) if done.returncode == 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="newcomer", help="the user without root to run as (made if missing)")
    parser.add_argument("--commands", default="1,2", help="which README commands (1: demo, 2: tests)")
    parser.add_argument("--work", type=Path, default=ROOT.parent / "fresh-setup",
                        help="where the clones go (beside the checkout, so ../shared is a link away)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the script creates the user and hands the clones to them")
    user = ensure_user(args.user)
    home = Path(user.pw_dir)
    pip_conf = Path("/root/.config/pip/pip.conf")
    if pip_conf.is_file():
        (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
        shutil.copy(pip_conf, home / ".config" / "pip" / "pip.conf")
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home / ".config")], check=True)
    commands = readme_commands()
    runs = []
    for number in (int(n) for n in args.commands.split(",")):
        command = commands[number - 1]
        shutil.rmtree(home / ".cache", ignore_errors=True)  # as on a new machine: no pip cache, no weights
        base = args.work / f"command{number}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        shared = ROOT.parent / "shared"
        if shared.exists():
            (base / "shared").symlink_to(shared)
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base / "main")], check=True)
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(base)], check=True)
        env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        env.update(HOME=str(home), PATH="/usr/local/bin:/usr/bin:/bin", USER=user.pw_name)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        done = subprocess.run([runuser, "-u", user.pw_name, "--", "bash", "-c", command], cwd=base / "main",
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        # pip's notes about this machine's local package index are noise here
        lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines()
                 if line.strip() and not line.startswith("WARNING: Location ")]
        tail = lines[-15:]
        runs.append({"command": command, "as_user": user.pw_name, "root": False, "caches": "empty",
                     "exit_status": done.returncode,
                     "wall_s": round(seconds, 1), "venv_mib": folder_mib(base / "main" / ".venv"),
                     "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2),
                     "output_tail": tail})
        print(f"command {number}: exit {done.returncode}, {seconds:.0f} s, venv {runs[-1]['venv_mib']:.0f} MiB")
        print("\n".join("  " + line for line in tail))
    print(f"wrote {save_result('fresh_setup', {'what': __doc__.splitlines()[0], 'runs': runs})}")


if __name__ == "__main__":
    main()
