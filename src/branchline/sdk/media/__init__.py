"""Media types for `log()`: images, tables, histograms, audio, video, HTML and `plot.*` charts.

Each is checked on the training thread and encoded by the writer process into a run file under
`media/...`, with a history descriptor in the shape the wandb client sends (sdk/media/stage.py).
"""

from __future__ import annotations

from branchline.sdk.media import plot
from branchline.sdk.media.audio import Audio
from branchline.sdk.media.histogram import Histogram
from branchline.sdk.media.html import Html
from branchline.sdk.media.image import Image
from branchline.sdk.media.table import Table
from branchline.sdk.media.video import Video

__all__ = ["Audio", "Histogram", "Html", "Image", "Table", "Video", "plot"]
