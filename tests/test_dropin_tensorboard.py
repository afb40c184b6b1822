"""`init(sync_tensorboard=True)`: what a TensorBoard SummaryWriter writes during a run reaches its history."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import branchline

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from branchline.sdk import tensorboard as tb_sync  # noqa: E402

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


@pytest.fixture(autouse=True)
def _unpatched() -> Any:
    yield
    tb_sync.unpatch()


def _tfevent_scalars(logdir: Path) -> dict[tuple[str, int], float]:
    """Every scalar in the event files, read directly: {(tag, step): value}."""
    from tensorboard.util import tensor_util

    found: dict[tuple[str, int], float] = {}
    for path in sorted(logdir.glob("*tfevents*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found[(value.tag, int(event.step))] = float(tensor_util.make_ndarray(value.tensor).item())
    return found


def _history_scalars(path: str, tags: set[str]) -> dict[tuple[str, int], float]:
    run = branchline.Api(overrides={"root_dir": "."}).run(path)
    found: dict[tuple[str, int], float] = {}
    for row in run.scan_history():
        for key, value in row.items():
            if key in tags and value is not None:
                found[(key, int(row["global_step"]))] = float(value)
    return found


class _CartLine:
    """A tiny vectorised control task in numpy: keep a point near 0 by pushing left or right."""

    def __init__(self, num_envs: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = num_envs
        self.pos = self.rng.uniform(-1, 1, size=num_envs)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def obs(self) -> Any:
        return np.stack([self.pos, self.t / 20.0], axis=1).astype(np.float32)

    def step(self, action: Any) -> tuple[Any, Any, Any, Any]:
        self.pos = self.pos + np.where(action == 1, 0.1, -0.1) + self.rng.normal(0, 0.02, size=self.n)
        self.t += 1
        reward = 1.0 - np.abs(self.pos)
        done = (np.abs(self.pos) > 2) | (self.t >= 20)
        episode_len = self.t.copy()
        self.pos = np.where(done, self.rng.uniform(-1, 1, size=self.n), self.pos)
        self.t = np.where(done, 0, self.t)
        return self.obs(), reward.astype(np.float32), done, episode_len


def _ppo(writer: Any, total_timesteps: int = 256, num_envs: int = 4, num_steps: int = 16) -> None:
    """cleanrl's PPO loop in miniature; like cleanrl it logs only through the SummaryWriter."""
    torch.manual_seed(0)
    env = _CartLine(num_envs, seed=0)
    actor = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    critic = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=2.5e-3, eps=1e-5)
    global_step = 0
    obs = torch.tensor(env.obs())
    for _update in range(total_timesteps // (num_envs * num_steps)):
        batch_obs, batch_act, batch_logp, batch_rew, batch_val, batch_done = [], [], [], [], [], []
        for _ in range(num_steps):
            global_step += num_envs
            with torch.no_grad():
                dist = torch.distributions.Categorical(logits=actor(obs))
                action = dist.sample()
                batch_val.append(critic(obs).squeeze(-1))
            batch_obs.append(obs)
            batch_act.append(action)
            batch_logp.append(dist.log_prob(action))
            next_obs, reward, done, episode_len = env.step(action.numpy())
            batch_rew.append(torch.tensor(reward))
            batch_done.append(torch.tensor(done, dtype=torch.float32))
            for i in np.nonzero(done)[0]:
                writer.add_scalar("charts/episodic_length", int(episode_len[i]), global_step)
            obs = torch.tensor(next_obs)
        returns = torch.zeros(num_steps, num_envs)
        running = critic(obs).squeeze(-1).detach()
        for t in reversed(range(num_steps)):
            running = batch_rew[t] + 0.99 * running * (1 - batch_done[t])
            returns[t] = running
        b_obs, b_act = torch.cat(batch_obs), torch.cat(batch_act)
        b_logp, b_ret = torch.cat(batch_logp), returns.reshape(-1)
        b_adv = b_ret - torch.cat(batch_val)
        for _epoch in range(2):
            dist = torch.distributions.Categorical(logits=actor(b_obs))
            ratio = (dist.log_prob(b_act) - b_logp).exp()
            pg_loss = torch.max(-b_adv * ratio, -b_adv * ratio.clamp(0.8, 1.2)).mean()
            v_loss = 0.5 * ((critic(b_obs).squeeze(-1) - b_ret) ** 2).mean()
            entropy = dist.entropy().mean()
            loss = pg_loss - 0.01 * entropy + 0.5 * v_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy.item(), global_step)
        writer.add_scalar("charts/SPS", float(global_step), global_step)


def test_cleanrl_style_ppo_ends_with_every_scalar_it_wrote(tmp_path: Path) -> None:
    run = branchline.init(project="ppo", sync_tensorboard=True, config={"env": "cartline"}, settings=QUIET)
    logdir = tmp_path / "runs" / f"cartline__ppo__{run.id}"
    writer = SummaryWriter(str(logdir))
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n|lr|0.0025|")
    _ppo(writer)
    writer.close()
    branchline.finish()

    written = _tfevent_scalars(logdir)
    assert len(written) > 20 and {tag for tag, _ in written} >= {"losses/value_loss", "charts/episodic_length"}
    stored = _history_scalars(run.path, {tag for tag, _ in written})
    assert stored == pytest.approx(written)


def test_values_written_after_init_arrive_while_the_run_is_live_and_histograms_too(tmp_path: Path) -> None:
    run = branchline.init(project="tb", tensorboard=True, settings=QUIET)
    writer = SummaryWriter(str(tmp_path / "tb"))
    writer.add_scalar("loss", 0.5, 7)
    writer.add_histogram("weights", np.arange(100.0), 7)
    writer.add_scalar("loss", 0.25, 8)
    writer.flush()
    sync = run._ctx.part(tb_sync.TensorBoardSync)
    assert sync is not None
    sync.scan()  # step 7 is complete (a later step was written); step 8 may still get values
    assert run.summary["loss"] == 0.5 and run.summary["global_step"] == 7
    histogram = run.summary["weights"]
    assert histogram["_type"] == "histogram" and sum(histogram["values"]) == 100
    run.log({"custom": 1.0}, step=1000)  # as in wandb, not the row's step while syncing
    writer.add_scalar("loss", 0.125, 9)  # not flushed: finish flushes the writer and reads it
    writer.add_image("frame", np.zeros((3, 4, 6)), 9)
    branchline.finish()
    api_run = branchline.Api(overrides={"root_dir": "."}).run(run.path)
    rows = [row for row in api_run.scan_history() if "global_step" in row and row["global_step"] is not None]
    assert [(row["global_step"], row["loss"]) for row in rows] == [(7, 0.5), (8, 0.25), (9, 0.125)]
    assert rows[0]["weights"]["_type"] == "histogram"  # one row per step, as wandb combines them
    assert api_run.summary["custom"] == 1.0 and api_run.lastHistoryStep < 1000
    frame = api_run.summary["frame"]
    assert frame["_type"] == "image-file" and (frame["width"], frame["height"]) == (6, 4)


def test_writers_of_a_finished_run_are_not_read_into_the_next(tmp_path: Path) -> None:
    first = branchline.init(project="tb", sync_tensorboard=True, settings=QUIET)
    writer = SummaryWriter(str(tmp_path / "a"))
    writer.add_scalar("x", 1.0, 0)
    writer.close()
    first.finish()
    second = branchline.init(project="tb", sync_tensorboard=True, settings=QUIET)
    second.log({"y": 2})
    second.finish()
    keys = branchline.Api(overrides={"root_dir": "."}).run(second.path).summary
    assert "x" not in keys and keys["y"] == 2


def test_patch_is_public_and_other_ignored_arguments_warn_once_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import branchline.settings
    from branchline import tensorboard

    monkeypatch.setattr(branchline.settings, "_warned", set())

    tensorboard.patch(root_logdir="logs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            run = branchline.init(project="p", monitor_gym=True, force=True, reinit="create_new", settings=QUIET)
            run.finish()
    messages = [str(w.message) for w in caught if "no effect" in str(w.message)]
    assert sum("'monitor_gym'" in m for m in messages) == 1 and sum("'force'" in m for m in messages) == 1
