"""Unmodified integrations log through the real wandb client into a real `branchline server`.

HF `Trainer(report_to="wandb")`, Lightning's `WandbLogger` and accelerate's `log_with="wandb"`
train tiny models on the CPU, built from configs with random tensors as data (nothing is fetched
from a model hub), in their own virtual environment (`.wandb-integrations-venv`, made by
scripts/install.sh). Each asserts on what branchline's own `Api` reads back over the server: the
integration's keys with their rows, the config it sends, the summary, and the finished state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from branchline.api import Api
from tests.test_wandb_client import ROOT, Server, _serve, start_clients

INTEGRATIONS_PYTHON = ROOT / ".wandb-integrations-venv" / "bin" / "python"
pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not INTEGRATIONS_PYTHON.exists():
        message = f"the integrations venv is missing ({INTEGRATIONS_PYTHON}); run scripts/install.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("wandb-integrations")
    with _serve(f"sqlite:///{workdir / 'store.db'}", workdir, []) as found:
        yield found


HF_TRAINER = """
import os
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

os.environ["WANDB_PROJECT"] = "integrations"
os.environ["WANDB_RUN_ID"] = "hf-trainer"
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2))


class Tokens(torch.utils.data.Dataset):
    def __init__(self):
        self.ids = torch.randint(0, 32, (32, 16), generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


args = TrainingArguments(
    output_dir="out", report_to="wandb", run_name="tiny-gpt2", per_device_train_batch_size=4,
    num_train_epochs=2, learning_rate=1e-3, logging_steps=2, eval_strategy="steps", eval_steps=8,
    save_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
)
Trainer(model=model, args=args, train_dataset=Tokens(), eval_dataset=Tokens()).train()
"""

LIGHTNING = """
import torch
import lightning as L
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import DataLoader, TensorDataset


class Regressor(L.LightningModule):
    def __init__(self, lr=0.05, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
logger = WandbLogger(project="integrations", id="lightning", name="tiny-regressor")
trainer = L.Trainer(
    max_epochs=2, logger=logger, log_every_n_steps=2, accelerator="cpu", enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False,
)
trainer.fit(Regressor(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=32))
logger.experiment.finish()
"""

ACCELERATE = """
import torch
from accelerate import Accelerator

accelerator = Accelerator(log_with="wandb", cpu=True)
accelerator.init_trackers(
    "integrations", config={"lr": 0.05, "epochs": 2, "batch_size": 8},
    init_kwargs={"wandb": {"id": "accelerate", "name": "tiny-linear"}},
)
torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
model, optimizer, loader = accelerator.prepare(model, optimizer, torch.utils.data.DataLoader(data, batch_size=8))
step = 0
for epoch in range(2):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"train/loss": loss.item(), "epoch": epoch}, step=step)
        step += 1
accelerator.end_training()
"""


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[Api]:
    # The three integrations start at once: most of each one's time is importing torch.
    procs = start_clients([HF_TRAINER, LIGHTNING, ACCELERATE], server, python=INTEGRATIONS_PYTHON)
    for proc in procs:  # torch and transformers take a while to import on a busy machine
        out, _ = proc.communicate(timeout=270)
        assert proc.returncode == 0, out + server.process.log.read_text()[-3000:]
    with Api(overrides={"base_url": server.url}, api_key=server.key) as found:
        yield found


def _rows(run: object, key: str) -> list[float]:
    return run.metric(key)[1].tolist()  # type: ignore[attr-defined, no-any-return]


def test_hf_trainer_report_to_wandb(api: Api) -> None:
    run = api.run("alice/integrations/hf-trainer")
    assert (run.state, run.display_name) == ("finished", "tiny-gpt2")
    # 32 samples / batch 4 = 8 steps an epoch, 16 in all: a loss every 2 steps, an eval every 8.
    # (the global step is logged with the evaluation too, and once more with the final figures)
    assert _rows(run, "train/global_step") == [2, 4, 6, 8, 8, 10, 12, 14, 16, 16, 16]
    assert len(_rows(run, "train/loss")) == 8 and all(v > 0 for v in _rows(run, "train/loss"))
    assert len(_rows(run, "train/learning_rate")) == 8 and len(_rows(run, "eval/loss")) == 2
    config = run.config
    assert config["learning_rate"] == 1e-3 and config["per_device_train_batch_size"] == 4  # TrainingArguments
    assert (config["vocab_size"], config["n_layer"], config["model_type"]) == (32, 1, "gpt2")  # the model's config
    summary = run.summary_metrics
    assert summary["train/global_step"] == 16 and summary["train/epoch"] == 2
    assert summary["eval/loss"] == _rows(run, "eval/loss")[-1] and "train_loss" in summary


def test_lightning_wandb_logger(api: Api) -> None:
    run = api.run("alice/integrations/lightning")
    assert (run.state, run.display_name) == ("finished", "tiny-regressor")
    # 8 batches an epoch, 2 epochs, a row every 2 steps; validation once an epoch.
    assert len(_rows(run, "train/loss")) == 8 and len(_rows(run, "val/loss")) == 2
    steps = _rows(run, "trainer/global_step")
    assert steps[:2] == [1.0, 3.0] and steps == sorted(steps)
    assert run.config == {"lr": 0.05, "hidden": 8}  # save_hyperparameters()
    assert run.summary_metrics["epoch"] == 1 and run.summary_metrics["val/loss"] == _rows(run, "val/loss")[-1]


def test_accelerate_log_with_wandb(api: Api) -> None:
    run = api.run("alice/integrations/accelerate")
    assert (run.state, run.display_name) == ("finished", "tiny-linear")
    steps, loss = run.metric("train/loss")
    assert steps.tolist() == list(range(16)) and len(loss) == 16
    assert run.metric("epoch")[1].tolist() == [0] * 8 + [1] * 8
    assert run.config == {"lr": 0.05, "epochs": 2, "batch_size": 8}
    assert run.summary_metrics["train/loss"] == loss[-1] and run.summary_metrics["_step"] == 15
