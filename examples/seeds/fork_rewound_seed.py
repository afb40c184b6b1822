"""The "fork from a rewound run" example from the W&B docs (seed 000/004)."""

import sys

import branchline as wandb

rewind_run = wandb.Api().run(f"your_entity_name/your_project_name/{sys.argv[1]}")

# Fork a run from a specific step
forked_run = wandb.init(
    project="your_project_name",
    entity="your_entity_name",
    fork_from=f"{rewind_run.id}?_step=500",
)

# Continue logging in the new run
for i in range(500, 1000):
    forked_run.log({"metric": i * 3})
forked_run.finish()
print("FORK", forked_run.id)
