"""The Ray engine: shards handed to a pool of Ray actors, each holding one adapter.

Each actor builds the adapter once from the picklable factory (on its own GPU when
``num_gpus`` is given) and runs one shard at a time; the driver gives an actor its
next shard as soon as it returns one. An actor whose process dies is restarted by
Ray (``max_restarts``) and its shard run again (``max_task_retries``), so every
shard's result comes back exactly once. Ray is imported only here, when a run asks
for it.

Examples
--------
>>> plan_workers({"CPU": 8.0}, workers=None, gpus_per_worker=None)
(8, 1, 0)
>>> plan_workers({"CPU": 16.0, "GPU": 2.0}, workers=None, gpus_per_worker=None)
(2, 1, 1)
>>> plan_workers({"CPU": 4.0}, workers=1, gpus_per_worker=None)
(1, 4, 0)
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Callable, Iterable

from .worker import ShardOutcome, ShardRunner

# Restarts of a lost actor, and reruns of the shard it held, before the shard counts as failed.
MAX_RETRIES = 3


def import_ray():
    """``ray``, or an ImportError naming the extra that installs it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError('engine="ray" needs Ray: pip install "probekit[scale]" (or pip install "ray[data]")') from error
    return ray


def plan_workers(resources: dict, *, workers: int | None, gpus_per_worker: float | None) -> tuple[int, int, float]:
    """``(workers, cpus_per_worker, gpus_per_worker)`` for the cluster's ``resources``.

    With GPUs (and ``gpus_per_worker`` not 0): one actor per ``gpus_per_worker`` GPUs
    (default 1). Without: one single-threaded actor per CPU, or ``workers`` actors
    sharing the CPUs (their torch threads).
    """
    cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    if gpus_per_worker is None:
        gpus_per_worker = 1 if gpus >= 1 else 0
    if gpus_per_worker:
        if workers is None:
            workers = max(1, int(gpus // gpus_per_worker))
        return workers, 1, gpus_per_worker
    workers = workers or max(1, cpus)
    return workers, max(1, cpus // workers), 0


def start_ray(*, address: str | None, workers: int | None):
    """Join the cluster at ``address``, or start a local Ray; returns ``(ray, started_here)``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, workers or 1), **quiet)
    return ray, True


class RayShardWorker:
    """The body of a Ray actor: a :class:`ShardRunner` that also says when it runs a shard again after a restart."""

    def __init__(self, factory, task: str, options: dict, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.runner = ShardRunner(factory, task, options)
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

    def run(self, index: int, part) -> tuple[int, ShardOutcome]:
        outcome = self.runner(part)
        outcome.retried, self.restarted = self.restarted, False  # one shard at a time: the first after a restart is the retried one
        return index, outcome


def run_ray(
    factory,
    task: str,
    options: dict,
    pending: Iterable,
    *,
    on_result: Callable,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    max_retries: int = MAX_RETRIES,
) -> int:
    """Run each ``(index, part)`` of ``pending`` on a pool of Ray actors; ``on_result(index, part, outcome)`` as each returns.

    Returns the number of workers. A Ray started here is shut down at the end.
    """
    ray, started = start_ray(address=address, workers=workers)
    actors = []
    try:
        n, cpus, gpus = plan_workers(ray.cluster_resources(), workers=workers, gpus_per_worker=gpus_per_worker)
        actor_class = ray.remote(RayShardWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=max_retries, max_task_retries=max_retries,
        )  # fmt: skip
        new_actor = functools.partial(actor_class.remote, factory, task, options, cpus)
        actors = [new_actor() for _ in range(n)]
        _dispatch(ray, actors, iter(pending), on_result, new_actor)
        return n
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()


def _dispatch(ray, actors: list, pending, on_result: Callable, new_actor: Callable) -> None:
    """Keep every actor busy with one shard until ``pending`` is exhausted and all have returned."""
    in_flight = {}
    idle = list(actors)
    while True:
        while idle:
            item = next(pending, None)
            if item is None:
                break
            actor = idle.pop()
            in_flight[actor.run.remote(*item)] = (item, actor)
        if not in_flight:
            return
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        (index, part), actor = in_flight.pop(ref)
        try:
            _, outcome = ray.get(ref)
        except ray.exceptions.RayActorError as error:  # lost beyond its restarts: the shard fails, a new actor joins
            outcome = ShardOutcome(error=f"worker lost {MAX_RETRIES + 1} times: {_first_line(error)}", retried=True)
            actors[actors.index(actor)] = actor = new_actor()
        on_result(index, part, outcome)
        idle.append(actor)


def _first_line(error: BaseException) -> str:
    from .._messages import one_line

    return one_line(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
