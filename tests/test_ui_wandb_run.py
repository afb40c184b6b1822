"""A run logged with the real wandb client opens in the web app like one logged with our SDK.

One store: a run logged with our SDK, then `branchline ui` over it, into which the unmodified
wandb client (`.wandb-venv`) logs a run, a fork of it (`fork_from`) and a rewind of it
(`resume_from`). The wandb run's page has the same tabs and workspace charts as the SDK run's;
the fork shows "Forked from", the rewound run its archived incarnation.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser_page, get_json, seed_store, shot, ui_env, ui_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parent.parent
WANDB_PYTHON = ROOT / ".wandb-venv" / "bin" / "python"
#: `branchline ui` (loopback, no users) accepts any key of the client's shape.
KEY = "local-" + "0" * 40
METRICS = ("train/loss", "val/acc")

SDK_SEED = textwrap.dedent(
    """
    import sys
    import branchline

    run = branchline.init(project="mixed", dir=sys.argv[1], id="sdk-run", name="sdk-run",
                          config={"lr": 0.1, "optimizer": "adam"}, settings={"quiet": True})
    for i in range(10):
        print(f"epoch {i} loss={1 / (i + 1):.3f}")
        run.log({"train/loss": 1.0 / (i + 1), "val/acc": i / 10})
    run.finish()
    """
)

WANDB_RUN = """
import time
import wandb

run = wandb.init(project="mixed", id="wb-run", name="wandb-run", config={"lr": 0.1, "optimizer": "adam"},
                 settings=wandb.Settings(x_stats_sampling_interval=0.5))
for i in range(10):
    print(f"epoch {i} loss={1 / (i + 1):.3f}")
    run.log({"train/loss": 1.0 / (i + 1), "val/acc": i / 10})
    time.sleep(0.15)  # long enough for a few system-metric samples
run.finish()
"""

WANDB_FORK = """
import wandb

run = wandb.init(project="mixed", id="wb-fork", name="wandb-fork", fork_from="wb-run?_step=4")
for i in range(5, 8):
    run.log({"train/loss": 0.5 / (i + 1), "val/acc": i / 8})
run.finish()
"""

WANDB_REWIND = """
import wandb

run = wandb.init(project="mixed", id="wb-run", resume_from="wb-run?_step=6")
for i in range(7, 9):
    print(f"rewound epoch {i}")
    run.log({"train/loss": 0.25 / (i + 1), "val/acc": i / 9})
run.finish()
"""


def _clients(base: str, root: Path, *scripts: str) -> None:
    env = {**ui_env(root), "WANDB_BASE_URL": base, "WANDB_API_KEY": KEY, "WANDB_SILENT": "true"}
    procs = []
    for i, script in enumerate(scripts):
        cwd = root / f"client-{len(list(root.glob('client-*')))}-{i}"
        cwd.mkdir()
        (cwd / "script.py").write_text(textwrap.dedent(script))
        env.update(WANDB_DIR=str(cwd), WANDB_CONFIG_DIR=str(cwd / ".config"), WANDB_CACHE_DIR=str(cwd / ".cache"))
        procs.append(
            subprocess.Popen(
                [str(WANDB_PYTHON), "script.py"], cwd=cwd, env=dict(env), stdout=subprocess.PIPE, text=True
            )
        )
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not WANDB_PYTHON.exists():
        message = f"the wandb client's venv is missing ({WANDB_PYTHON}); run scripts/install.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("ui-wandb")
    seed_store(root, SDK_SEED)
    with ui_server(root) as base:
        _clients(base, root, WANDB_RUN)
        _clients(base, root, WANDB_FORK, WANDB_REWIND)  # both branch off the finished run
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "entity": entity}


def _run_url(site: dict[str, Any], run_id: str, tab: str = "") -> str:
    return f"/{site['entity']}/mixed/runs/{run_id}" + (f"/{tab}" if tab else "")


def _tabs_and_panels(page: Any, site: dict[str, Any], run_id: str) -> tuple[list[str], list[str]]:
    page.goto(_run_url(site, run_id, "workspace"))
    for metric in METRICS:
        page.locator(f".panel[data-metric='{metric}'] canvas").first.wait_for()
    tabs = page.locator("nav[aria-label='Run views'] a").all_inner_texts()
    panels = page.locator(".panel[data-metric]").evaluate_all("nodes => nodes.map(n => n.dataset.metric)")
    return [t.strip() for t in tabs], sorted(set(panels))


def test_a_wandb_run_has_the_tabs_and_charts_of_an_sdk_run(browser: Any, site: dict[str, Any]) -> None:
    with browser_page(browser, site["base"]) as page:
        sdk_tabs, sdk_panels = _tabs_and_panels(page, site, "sdk-run")
        tabs, panels = _tabs_and_panels(page, site, "wb-run")
        assert tabs == sdk_tabs and {"Workspace", "System", "Logs", "Files"} <= set(tabs)
        assert panels == sdk_panels and set(METRICS) <= set(panels)
        shot(page, "wandb-run-workspace")

        page.get_by_role("link", name="Logs").click()
        page.get_by_role("log").get_by_text("rewound epoch 7").wait_for()
        page.get_by_role("link", name="System").click()
        page.wait_for_url(re.compile(r"/system$"))
        page.locator(".panel[data-metric] canvas").first.wait_for()  # the client's system metrics
        page.get_by_role("link", name="Files").click()
        page.get_by_role("button", name="wandb-metadata.json").wait_for()
        page.get_by_role("link", name="Overview").click()
        python = page.locator(".field-row", has=page.locator("dt", has_text="Python version")).locator("dd")
        assert python.inner_text().startswith("CPython")  # the client's environment, as our SDK records it
        assert (
            page.locator(".field-row", has=page.locator("dt", has_text=re.compile(r"^OS$"))).locator("dd").inner_text()
            != "–"
        )

        page.goto(f"/{site['entity']}/mixed")  # the project workspace charts both clients' runs
        page.locator(".run-list .run-name", has_text="wandb-fork").wait_for()
        names = page.locator(".run-list .run-name").all_inner_texts()
        assert {"sdk-run", "wandb-run", "wandb-fork"} <= {n.strip() for n in names}
        page.locator(".panel[data-metric='train/loss'] canvas").first.wait_for()


def test_fork_and_rewind_from_the_wandb_client(browser: Any, site: dict[str, Any]) -> None:
    with browser_page(browser, site["base"]) as page:
        page.goto(_run_url(site, "wb-fork"))
        forked = page.get_by_test_id("forked-from")
        assert re.search(r"Forked from .*mixed/wb-run.* at step 4", forked.inner_text()), forked.inner_text()
        shot(page, "wandb-run-fork")

        page.goto(_run_url(site, "wb-run"))
        rewound = page.get_by_test_id("forked-from")
        match = re.search(r"Rewound from archived incarnation (\w+) at step 6", rewound.inner_text())
        assert match, rewound.inner_text()
        assert match.group(1) in page.get_by_test_id("incarnations").inner_text()
        rewound.get_by_role("link").click()
        page.wait_for_url(re.compile(f"/incarnations/{match.group(1)}$"))
        page.get_by_role("note").filter(has_text="archived incarnation #1").wait_for()
