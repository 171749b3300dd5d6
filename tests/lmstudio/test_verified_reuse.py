"""Files found in LM Studio's folder under the right name (LM Studio's own download, lms get, an older
hanzo) are used only once verified against the Hub; wrong ones are set aside and fetched again."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import hanzo_json, run_hanzo
from tests.huggingface.hubserver import FakeHub

REPO = "org/Reuse-GGUF"
Q8 = "Reuse-Q8_0.gguf"


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning:")]


def test_a_right_file_in_place_is_verified_and_used(lms_dir: Path, hub: FakeHub) -> None:
    data = b"GGUF" + os.urandom(256 * 1024)
    hub.add_repo(REPO, {Q8: data})
    placed = lms_dir / REPO / Q8
    placed.parent.mkdir(parents=True)
    placed.write_bytes(data)  # as LM Studio would have downloaded it

    proc = run_hanzo("model:pull", "--provider", "lmstudio", f"{REPO}:Q8_0")

    assert proc.returncode == 0, proc.stderr
    assert hub.cdn(data).bytes_sent == 0 and warnings(proc.stderr) == []
    assert placed.read_bytes() == data


def test_a_file_with_the_right_name_and_wrong_bytes_is_fetched_again(lms_dir: Path, hub: FakeHub) -> None:
    data = b"GGUF" + os.urandom(256 * 1024)
    hub.add_repo(REPO, {Q8: data})
    placed = lms_dir / REPO / Q8
    placed.parent.mkdir(parents=True)
    placed.write_bytes(bytes(len(data)))  # right name and size, wrong bytes

    proc = run_hanzo("model:pull", "--provider", "lmstudio", f"{REPO}:Q8_0")

    assert proc.returncode == 0, proc.stderr
    (warning,) = warnings(proc.stderr)
    assert str(placed) in warning and "fetching it again" in warning
    assert placed.read_bytes() == data
    (aside,) = (lms_dir / ".hanzo-corrupt").iterdir()
    assert aside.read_bytes() == bytes(len(data)) and not aside.name.endswith(".gguf")
    # the set-aside copy is not an LM Studio model, and a second pull trusts the verified file
    assert [m["name"] for m in hanzo_json("model:list", "--provider", "lmstudio", "--json")] == [
        f"{REPO}/{Q8}"
    ]
    sent = hub.cdn(data).bytes_sent
    again = run_hanzo("model:pull", "--provider", "lmstudio", f"{REPO}:Q8_0")
    assert again.returncode == 0 and warnings(again.stderr) == [] and hub.cdn(data).bytes_sent == sent


def test_a_truncated_shard_of_a_split_model_is_fetched_again(lms_dir: Path, hub: FakeHub) -> None:
    shards = {f"Split-Q6_K-0000{i}-of-00002.gguf": b"GGUF" + os.urandom(64 * 1024) for i in (1, 2)}
    hub.add_repo("org/Split-GGUF", shards)
    folder = lms_dir / "org" / "Split-GGUF"
    folder.mkdir(parents=True)
    (first, good), (second, data) = shards.items()
    (folder / first).write_bytes(good)
    (folder / second).write_bytes(data[:1000])  # an interrupted copy

    proc = run_hanzo("model:pull", "--provider", "lmstudio", "org/Split-GGUF:Q6_K")

    assert proc.returncode == 0, proc.stderr
    assert len(warnings(proc.stderr)) == 1
    assert (folder / first).read_bytes() == good and (folder / second).read_bytes() == data
    assert hub.cdn(good).bytes_sent == 0
