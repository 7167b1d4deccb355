"""The ``Checkpointer`` callback: an atomic checkpoint after every few epochs."""

from __future__ import annotations

from pathlib import Path

from deepdx.train.callbacks import Callback, TrainState
from deepdx.train.distributed import is_main_process

__all__ = ["Checkpointer"]


class Checkpointer(Callback):
    """Write a resumable checkpoint of the whole run into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Run directory; checkpoints go to ``directory/epoch-000005/`` and
        ``directory/latest.json`` names the newest.
    every : int, default=1
        Save every ``every`` epochs, and always after the last one.
    keep : int, default=2
        Number of checkpoints kept; older ones are deleted after a successful save.

    Notes
    -----
    In distributed training only rank 0 writes. It must run after every other callback of
    the epoch so their state is current; ``fit`` appends it last.
    """

    def __init__(self, directory: str | Path, *, every: int = 1, keep: int = 2) -> None:
        if every < 1 or keep < 1:
            raise ValueError(f"Checkpointer needs every >= 1 and keep >= 1; got {every}, {keep}.")
        self.directory, self.every, self.keep = Path(directory), every, keep

    def on_epoch_end(self, state: TrainState) -> None:
        """Save when the epoch is due, the last one, or the run is stopping."""
        last = state.epoch >= state.n_epochs or state.stop_reason is not None
        if (state.epoch % self.every == 0 or last) and is_main_process():
            assert state.snapshot is not None
            from deepdx.train.checkpoint import save_checkpoint

            model_state, loop_state = state.snapshot()
            save_checkpoint(
                self.directory,
                model_state=model_state,
                state=loop_state,
                tag=f"epoch-{state.epoch:06d}",
                keep=self.keep,
            )
