"""Media panels in real headless Chromium: images of two runs with a step slider, boxes, masks and
the enlarged view; a table with image thumbnails (paged, sorted, filtered); a histogram heat map from
`watch()`; a confusion matrix and a PR curve; audio, video and HTML (sandboxed) players; the Files
tab's previews. Screenshots: media-images, media-table, media-histogram, media-confusion-pr.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import browser_page, get_json, require_browser_and_app, seed_store, shot, ui_server

pytestmark = pytest.mark.browser

SEED = textwrap.dedent(
    """
    import io, json, math, sys, wave
    import numpy as np
    import torch
    import branchline
    from branchline import plot

    root = sys.argv[1]
    quiet = {"quiet": True}
    ids = {}
    rng = np.random.default_rng(3)
    for i, name in enumerate(["cats", "dogs"]):
        run = branchline.init(project="media", dir=root, name=name, settings=quiet)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        if i == 0:
            run.watch(model, log="all", log_freq=1)
        for step in range(6):
            x = torch.randn(32, 8)
            loss = ((model(x) - 1.0) ** 2).mean() * (1 + i)
            model.zero_grad(); loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            img = np.zeros((48, 64, 3), dtype=np.uint8)
            img[..., i] = 40 + 35 * step  # red ramp for run 0, green for run 1
            img[10:30, 10 + 6 * step: 24 + 6 * step, 2] = 255
            mask = np.zeros((48, 64), dtype=np.uint8); mask[30:46, 30:60] = 1
            boxes = {"predictions": {"box_data": [{"position": {"minX": 0.1 + 0.05 * step, "maxX": 0.5, "minY": 0.2, "maxY": 0.7},
                     "class_id": 1, "box_caption": "thing", "scores": {"conf": 0.9}}], "class_labels": {1: "thing"}}}
            masks = {"truth": {"mask_data": mask, "class_labels": {0: "bg", 1: "blob"}}}
            row = {"loss": loss.item(), "images/examples": branchline.Image(img, caption=f"{name} step {step}", boxes=boxes, masks=masks)}
            if step % 2 == 0:
                row["images/pair"] = [branchline.Image(img, caption=f"a{step}"), branchline.Image(255 - img, caption=f"b{step}")]
            run.log(row, step=step)
        if i == 0:
            table = branchline.Table(columns=["id", "label", "score", "image"])
            for k in range(23):
                pic = np.zeros((16, 16, 3), dtype=np.uint8)
                pic[..., k % 3] = 120 + 5 * k
                table.add_data(k, ["cat", "dog", "bird"][k % 3], round(float(k * 0.37 % 1), 3), branchline.Image(pic))
            y_true = rng.integers(0, 3, 60)
            probs = rng.random((60, 3)); probs[np.arange(60), y_true] += 0.6
            probs = probs / probs.sum(1, keepdims=True)
            ts = np.arange(8000) / 8000
            audio = (0.3 * np.sin(2 * math.pi * 440 * ts)).astype(np.float32)
            frames = np.zeros((4, 3, 16, 16), dtype=np.uint8)
            for f in range(4): frames[f, 0, :, f * 4:(f + 1) * 4] = 255
            run.log({"samples": table,
                     "eval/confusion": plot.confusion_matrix(y_true=y_true, probs=probs, class_names=["cat", "dog", "bird"]),
                     "eval/pr": plot.pr_curve(y_true, probs, labels=["cat", "dog", "bird"]),
                     "tone": branchline.Audio(audio, sample_rate=8000, caption="440 Hz"),
                     "clip": branchline.Video(frames, fps=4),
                     "report": branchline.Html("<h1 id='t'>Report</h1><script>"
                         "let r={}; try{r.cookie=document.cookie}catch(e){r.cookie='blocked'}"
                         "try{r.parent=String(parent.document.title)}catch(e){r.parent='blocked'}"
                         "r.origin=String(self.origin);"
                         "parent.postMessage({probe:r},'*')</script>"),
                     "hist": branchline.Histogram(rng.normal(size=500))}, step=6)
        ids[name] = {"run_id": run.id, "incarnation": run._start.incarnation_id}
        run.finish()
    print("IDS=" + json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-media")
    ids = seed_store(root, SEED)
    with ui_server(root) as base:
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "ids": ids, "entity": entity}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    with browser_page(browser, site["base"], height=1000) as tab:
        yield tab


def panel(page: Any, key: str) -> Any:
    found = page.locator(f".media-panel[data-metric='{key}']")
    found.scroll_into_view_if_needed()
    return found


def center(found: Any) -> None:
    """Scroll a panel to the middle of the window (for the screenshots)."""
    found.evaluate("(e) => e.scrollIntoView({block: 'center'})")


def captions(images: Any) -> list[str]:
    return [text.strip() for text in images.locator(".media-run .media-caption").all_inner_texts()]


def test_image_panel_steps_across_two_runs(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/media")
    images = panel(page, "images/examples")
    images.locator(".media-run[data-run='dogs'] img").first.wait_for()
    assert images.locator(".media-run").count() == 2
    assert sorted(captions(images)) == ["cats step 5", "dogs step 5"]  # the last step first
    before = images.locator(".media-run[data-run='cats'] img").first.get_attribute("src")
    # Boxes and masks are drawn over each image.
    assert images.locator(".media-run[data-run='cats'] .media-box").count() == 1
    images.locator(".media-run[data-run='cats'] canvas.media-mask[data-drawn='true']").wait_for()
    slider = images.get_by_label("images/examples: step")
    slider.fill("0")
    page.wait_for_function(
        "() => [...document.querySelectorAll(\".media-panel[data-metric='images/examples'] .media-caption\")].map(e => e.textContent).sort().join() === 'cats step 0,dogs step 0'"
    )
    assert images.locator(".media-step").first.inner_text() == "Step 0"
    after = images.locator(".media-run[data-run='cats'] img").first
    assert after.get_attribute("src") != before
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=after.element_handle())
    slider.fill("3")
    page.wait_for_function(
        "() => document.querySelector(\".media-panel[data-metric='images/examples'] .media-run[data-run='cats'] .media-caption\").textContent === 'cats step 3'"
    )
    center(images)
    shot(page, "media-images")
    # Click to enlarge; Escape closes.
    images.locator(".media-run[data-run='dogs'] .media-image-button").first.click()
    dialog = page.locator("dialog.media-lightbox[open]")
    dialog.wait_for()
    assert "dogs" in dialog.inner_text() and "dogs step 3" in dialog.inner_text()
    assert dialog.locator(".media-box").count() == 1
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    # A list of images under one key shows every member.
    pair = panel(page, "images/pair")
    pair.locator(".media-run[data-run='cats'] img").nth(1).wait_for()
    assert [c.strip() for c in pair.locator(".media-run[data-run='cats'] .media-caption").all_inner_texts()] == [
        "a4",
        "b4",
    ]


def test_table_panel_pages_sorts_and_filters(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/media")
    table = panel(page, "samples")
    table.locator("tbody tr").first.wait_for()
    assert table.locator("tbody tr").count() == 10
    table.get_by_text("Page 1 of 3").wait_for()
    thumb = table.locator("tbody tr").first.locator("img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 16", arg=thumb.element_handle())
    table.get_by_role("button", name="Next page").click()
    table.get_by_text("Page 2 of 3").wait_for()
    assert table.locator("tbody tr td").first.inner_text() == "10"
    table.get_by_role("button", name="score").click()
    assert table.locator("th[aria-sort='ascending']").inner_text().startswith("score")
    scores = [float(t) for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts()]
    assert scores == sorted(scores) and table.get_by_text("Page 1 of 3").count() == 1
    table.get_by_role("button", name="score").click()
    descending = [float(t) for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts()]
    assert descending == sorted(descending, reverse=True) and descending[0] >= scores[-1]
    table.get_by_role("searchbox").fill("bird")
    table.get_by_text("7 of 23 rows").wait_for()
    assert set(table.locator("tbody tr td:nth-child(2)").all_inner_texts()) == {"bird"}
    table.get_by_role("searchbox").fill("")
    table.locator("tbody tr").first.locator(".media-image-button").click()
    page.locator("dialog.media-lightbox[open] img").wait_for()
    page.keyboard.press("Escape")
    center(table)
    shot(page, "media-table")


def test_histogram_heat_map_from_watch(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/media")
    hist = panel(page, "gradients/0.weight")
    heat = hist.locator("canvas.media-heatmap")
    heat.wait_for()
    page.wait_for_function("(c) => Number(c.dataset.drawn) >= 3", arg=heat.element_handle())
    colored = page.evaluate(
        """(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] === 255) n++; return n / (c.width * c.height); }""",
        heat.element_handle(),
    )
    assert 0.05 < colored < 1.0  # the distribution is drawn, and not as one solid block
    assert hist.locator("svg.media-hist rect").count() == 64  # the chosen step's 64 bins
    last = hist.locator(".media-step").inner_text()
    heat.hover(position={"x": 2, "y": 70})
    page.wait_for_function(
        "(last) => document.querySelector(\".media-panel[data-metric='gradients/0.weight'] .media-step\").textContent !== last",
        arg=last,
    )
    parameters = panel(page, "parameters/2.weight")
    parameters.locator("canvas.media-heatmap").wait_for()
    center(hist)
    shot(page, "media-histogram")


def test_confusion_matrix_and_pr_curve(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/media")
    matrix = panel(page, "eval/confusion").locator("table.media-confusion")
    matrix.wait_for()
    cells = matrix.locator("td")
    assert cells.count() == 9
    counts = [int(c) for c in cells.all_inner_texts()]
    assert sum(counts) == 60
    assert [h.strip() for h in matrix.locator("tbody th").all_inner_texts()] == ["cat", "dog", "bird"]
    pr = panel(page, "eval/pr")
    curves = pr.locator(".media-curves[data-drawn='3']")
    curves.wait_for()
    assert curves.locator("canvas").count() >= 1
    assert pr.locator(".u-legend").inner_text().count("cat") == 1  # one line per class, named
    assert "Recall" in pr.inner_text() and "Precision" in pr.inner_text()
    center(pr)
    shot(page, "media-confusion-pr")


def test_audio_video_and_sandboxed_html(browser: Any, site: dict[str, Any]) -> None:
    with browser_page(browser, site["base"]) as page:
        # A cookie of our origin the HTML must not be able to read.
        page.context.add_cookies([{"name": "probe_secret", "value": "s3cret", "url": site["base"]}])
        page.add_init_script(
            "window.__probes = []; addEventListener('message', (e) => window.__probes.push({origin: e.origin, data: e.data}));"
        )
        page.goto(f"/{site['entity']}/media")
        audio = panel(page, "tone").locator("audio")
        audio.wait_for()
        duration = page.wait_for_function(
            "(a) => a.readyState >= 1 && a.duration > 0 ? a.duration : null", arg=audio.element_handle()
        ).json_value()
        assert abs(duration - 1.0) < 0.05
        assert "440 Hz" in panel(page, "tone").inner_text()
        clip = panel(page, "clip").locator("img.media-video")
        page.wait_for_function("(img) => img.complete && img.naturalWidth === 16", arg=clip.element_handle())
        frame = panel(page, "report").locator("iframe.media-html")
        frame.wait_for()
        assert frame.get_attribute("sandbox") == "allow-scripts"
        probe = page.wait_for_function("() => window.__probes.find((p) => p.data && p.data.probe)").json_value()
        # The script ran, in an opaque origin: no cookie, no parent document, origin "null".
        assert probe["origin"] == "null"
        assert probe["data"]["probe"] == {"cookie": "blocked", "parent": "blocked", "origin": "null"}
        assert page.frame_locator(".media-panel[data-metric='report'] iframe").locator("#t").inner_text() == "Report"


def test_run_workspace_and_files_previews(page: Any, site: dict[str, Any]) -> None:
    run = f"/{site['entity']}/media/runs/{site['ids']['cats']['run_id']}"
    page.goto(f"{run}/workspace")
    panel(page, "images/examples").locator("img").first.wait_for()
    assert panel(page, "images/examples").locator(".media-run").count() == 1
    page.goto(f"{run}/files")
    page.get_by_role("button", name="branchline-metadata.json").click()
    page.wait_for_function(
        "() => document.querySelector('.file-text')?.textContent.startsWith('{\\n  ')"
    )  # pretty-printed
    page.get_by_role("button", name=re.compile(r"^tone_6_.*\.wav$")).click()
    audio = page.locator("section[aria-label^='Preview of'] audio")
    page.wait_for_function("(a) => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    page.get_by_role("button", name=re.compile(r"^samples_6_.*\.table\.json$")).click()
    page.locator("section[aria-label^='Preview of'] .media-table tbody tr").first.wait_for()
    assert page.get_by_text("23 rows").count() == 1
    page.get_by_role("button", name=re.compile(r"^report_6_.*\.html$")).click()
    frame = page.locator("section[aria-label^='Preview of'] iframe")
    assert frame.get_attribute("sandbox") == "allow-scripts"
    assert page.frame_locator("section[aria-label^='Preview of'] iframe").locator("#t").inner_text() == "Report"
