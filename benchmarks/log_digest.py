"""Digest of every scenario's logs at a small size: one sha256 per Parquet file.

Why: refactors and optimisations promise "same scenario and seed, same logs, bit for bit". Run
this before and after a change and diff the two outputs:

    python benchmarks/log_digest.py > before.txt   # on the old commit
    python benchmarks/log_digest.py > after.txt    # on the new one
    diff before.txt after.txt

Each scenario is shrunk (users, days, replicates, items) so the whole set takes minutes. Scenarios
that need an LLM endpoint are skipped unless --llm is given. Scenarios of a calibrated population
read one that this run calibrates afresh from ML-100K (a file left in runs/ may come from older
code, or lack the fitted user model, and would hide a change to either).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    raw["replicates"] = 1
    # metrics shape the A/B table, not the logs; a shrunk horizon can leave one without a value
    # (return_7d, entropy_trend), which validate refuses
    raw.pop("metrics", None)
    horizon = raw.setdefault("horizon", {})
    horizon["days"] = min(float(horizon.get("days", 2)), 2)
    # a schedule the shrunk horizon would leave without an event is halved into it: validate
    # refuses creators' settings with no review before the horizon, and a learner whose
    # schedule (other than the default daily one) has no refit in it; the digest hashed
    # neither (scenarios/creators.yaml shrunk to 2 days had no review)
    days = horizon["days"]
    periodic = [(raw.get("creators"), "period_days"), (raw.get("retrain"), "every_days")]
    periodic += [(arm, "retrain_every_days") for arm in raw.get("arms") or []]
    for section, key in periodic:
        value = float(section.get(key) or 0) if isinstance(section, dict) else 0.0
        if value >= days and (key == "period_days" or value != 1.0):
            section[key] = days / 2
    pop = raw.setdefault("population", {})
    if "users" in pop:
        pop["users"] = min(int(pop["users"]), 300)
        panel = pop.get("llm_panel") or {}
        if isinstance(panel, dict) and "users" in panel:
            panel["users"] = min(int(panel["users"]), 2)
    cat = raw.get("catalog") or {}
    if "initial_items" in cat:
        cat["initial_items"] = min(int(cat["initial_items"]), 400)
    if isinstance(raw.get("sweep"), dict):
        for key, values in list(raw["sweep"].items()):
            if isinstance(values, list):
                raw["sweep"][key] = values[:2]
    return raw


def _read(path: str) -> tuple[dict[tuple[str, str], str], set[str]]:
    """The file digests, and the scenarios whose run failed (a ``NAME: exit N: ...`` line)."""
    table, failed = {}, set()
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[(parts[0], parts[1])] = parts[2]
        elif len(parts) > 2 and parts[1] == "exit":
            failed.add(parts[0])
    return table, failed


def compare(before_path: str, after_path: str) -> int:
    """0 when every file of BEFORE has the same digest in AFTER (for the scenarios AFTER ran
    or failed to run: a failed run's files are missing, not left out)."""
    (before, _), (after, failed) = _read(before_path), _read(after_path)
    for scenario in sorted(failed):
        print(f"FAILED {scenario}")
    ran = {scenario for scenario, _ in after} | failed
    changed = [k for k, v in before.items() if k[0] in ran and after.get(k) not in (None, v)]
    missing = [k for k in before if k[0] in ran and k not in after]
    new = sorted({k[1].rsplit("/", 1)[-1] for k in after if k not in before})
    for scenario, rel in changed:
        print(f"CHANGED {scenario} {rel}")
    for scenario, rel in missing:
        print(f"MISSING {scenario} {rel}")
    if new:
        print("new tables (not in BEFORE):", ", ".join(new))
    same = sum(1 for k, v in before.items() if after.get(k) == v)
    print(f"{same} files identical, {len(changed)} changed, {len(missing)} missing")
    return 1 if changed or missing else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--llm", action="store_true", help="also run scenarios that need an LLM")
    ap.add_argument(
        "--compare",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="compare two digest outputs file by file (new tables are listed, not failures)",
    )
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    files = args.scenarios or sorted((ROOT / "scenarios").rglob("*.yaml"))
    recarena = str(Path(sys.executable).with_name("recarena"))
    scratch = tempfile.TemporaryDirectory()
    population = Path(scratch.name) / "ml-100k.parquet"
    for path in files:
        raw = yaml.safe_load(path.read_text())
        if (raw.get("population") or {}).get("from") == "calibrated":
            if not population.exists():
                subprocess.run(
                    [recarena, "calibrate", "ml-100k", "-o", str(population)],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
            raw["population"]["path"] = str(population)
        if not args.llm and "llm" in path.read_text():
            print(f"{path.name}: skipped (needs an LLM endpoint)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            small = Path(tmp) / path.name
            small.write_text(yaml.safe_dump(shrink(raw)))
            out = Path(tmp) / "runs"
            proc = subprocess.run(
                [recarena, "run", str(small), "-o", str(out), "--quiet"],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1:]
                print(f"{path.name}: exit {proc.returncode}: {last}")
                continue
            for f in sorted(out.rglob("*.parquet")):
                digest = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
                rel = "/".join(f.relative_to(out).parts)
                print(f"{path.name}: {rel} {digest}")


if __name__ == "__main__":
    main()
