"""The Ray engine: shards handed to a pool of Ray actors, each holding one adapter.

Each actor builds the adapter once from the picklable factory (on its own GPU when
``num_gpus`` is given) and runs one shard at a time, with the next one waiting; the
driver gives an actor another shard as soon as it returns one. An actor whose
process dies is restarted by Ray (``max_restarts``) and its shards run again
(``max_task_retries``), so every shard's result comes back exactly once. Ray is
imported only here, when a run asks for it.

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
import warnings
from typing import Callable, Iterable

from .worker import ShardOutcome, ShardRunner

# Restarts of a lost actor, and reruns of the shard it held, before the shard counts as failed.
MAX_RETRIES = 3
# Shards an actor holds at a time: the one it runs and the next.
SHARDS_PER_ACTOR = 2


def import_ray():
    """``ray``, or an ImportError naming the extra that installs it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError('engine="ray" needs Ray: pip install "probekit[scale]" (or pip install "ray[data]")') from error
    return ray


def plan_workers(resources: dict, *, workers: int | None, gpus_per_worker: float | None,
                 cpus_per_worker: int | None = None) -> tuple[int, int, float]:
    """``(workers, cpus_per_worker, gpus_per_worker)`` for the cluster's ``resources``.

    With GPUs (and ``gpus_per_worker`` not 0): one actor per ``gpus_per_worker`` GPUs
    (default 1), each with one CPU. Without: ``workers`` actors (default one per CPU)
    sharing the CPUs; a worker uses its CPUs as torch threads. ``cpus_per_worker``,
    when given, is what each actor takes.
    """
    cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    if gpus_per_worker is None:
        gpus_per_worker = 1 if gpus >= 1 else 0
    if gpus_per_worker:
        if workers is None:
            workers = max(1, int(gpus // gpus_per_worker))
        return workers, cpus_per_worker or 1, gpus_per_worker
    if workers is None:
        workers = max(1, cpus // (cpus_per_worker or 1))
    return workers, cpus_per_worker or max(1, cpus // workers), 0


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
    """The body of a Ray actor: runs shards of the job it is given, building its adapter once per job.

    It also says when a shard runs again after the actor was restarted: an actor runs
    one shard at a time and Ray resubmits its shards in order, so the first shard
    after a restart is the one it lost.
    """

    def __init__(self, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.job, self.runner = None, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray's own deprecation notice from inside this property
            self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

    def run(self, job: str, spec: tuple, index: int, part) -> tuple[int, ShardOutcome]:
        if job != self.job:
            if self.runner is not None:
                self.runner.close()
            pickled, task, options = spec
            self.job, self.runner = job, ShardRunner(functools.partial(_build, pickled), task, options)
        outcome = self.runner(part)
        outcome.retried, self.restarted = self.restarted, False
        return index, outcome


def _build(pickled: bytes):
    """The adapter from the pickled factory; a factory the worker cannot unpickle says why."""
    import ray

    try:
        factory = ray.cloudpickle.loads(pickled)
    except Exception as error:  # noqa: BLE001 - named in the shard's reason
        raise RuntimeError(
            f"the worker cannot unpickle adapter_factory ({type(error).__name__}: {error}); the modules it uses must be "
            "importable on every worker"
        ) from None
    return factory()


# The actors kept between runs in a Ray session this module did not start: (session, plan) -> actors.
_POOL: dict = {}


def release_workers() -> None:
    """End the actors kept between runs (they also end with ``ray.shutdown()``).

    Actors of a Ray session that has ended since are only forgotten: their handles
    are no longer valid, and their processes ended with their session.
    """
    ray = import_ray()
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    for (owner, *_), actors in _POOL.items():
        if owner != node:
            continue
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - an actor already gone needs no ending
                pass
    _POOL.clear()


def _actors(ray, plan: tuple, max_retries: int) -> tuple[list, Callable]:
    """The pool for ``plan`` (kept from an earlier run of this Ray session when there is one), and how to add an actor."""
    n, cpus, gpus = plan
    context = ray.get_runtime_context()
    key = (context.get_node_id(), context.get_job_id(), plan, max_retries)  # the node id is new in every session
    actor_class = ray.remote(RayShardWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=max_retries,
                                                     max_task_retries=max_retries)  # fmt: skip
    new_actor = functools.partial(actor_class.remote, cpus)
    if key not in _POOL:
        release_workers()  # idle actors of another plan would hold the CPUs and GPUs the new ones need
        _POOL[key] = [new_actor() for _ in range(n)]
    return _POOL[key], new_actor


def run_ray(
    factory,
    task: str,
    *,
    options: dict,
    pending: Iterable,
    on_result: Callable,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: int | None = None,
    max_retries: int = MAX_RETRIES,
) -> int:
    """Run each ``(index, part)`` of ``pending`` on a pool of Ray actors; ``on_result(index, part, outcome)`` as each returns.

    Returns the number of workers. A Ray started here is shut down at the end; in a
    Ray session started before (``ray.init``), the actors stay up for the next run,
    which then skips their start-up (:func:`release_workers` ends them).
    """
    import hashlib

    ray, started = start_ray(address=address, workers=workers)
    try:
        plan = plan_workers(ray.cluster_resources(), workers=workers, gpus_per_worker=gpus_per_worker,
                            cpus_per_worker=cpus_per_worker)  # fmt: skip
        actors, new_actor = _actors(ray, plan, max_retries)
        pickled = ray.cloudpickle.dumps(factory)  # unpickled by the worker, where a failure is the shard's reason
        spec = ray.put((pickled, task, options))
        job = hashlib.sha256(pickled + ray.cloudpickle.dumps((task, options))).hexdigest() + os.urandom(4).hex()
        _dispatch(ray, actors, iter(pending), on_result, functools.partial(_submit, job, spec), new_actor)
        return plan[0]
    except BaseException:
        release_workers()  # an interrupted run leaves no busy actor behind
        raise
    finally:
        if started:
            _POOL.clear()
            ray.shutdown()


def _submit(job: str, spec, actor, item):
    return actor.run.remote(job, spec, *item)


def _dispatch(ray, actors: list, pending, on_result: Callable, submit: Callable, new_actor: Callable) -> None:
    """Keep every actor busy until ``pending`` is exhausted and all shards have returned.

    Each actor holds two shards, the one it runs and the next, so it starts the next
    as soon as it returns one instead of waiting for the driver to hear of it and send
    another (tens of milliseconds on a busy machine); the driver saves a returned
    shard while the actors work.
    """
    in_flight, successor = {}, {}

    def give(actor) -> None:
        item = next(pending, None)
        if item is not None:
            in_flight[submit(actor, item)] = (item, actor)

    for _ in range(SHARDS_PER_ACTOR):
        for actor in list(actors):
            give(actor)
    while in_flight:
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        (index, part), actor = in_flight.pop(ref)
        try:
            _, outcome = ray.get(ref)
        except ray.exceptions.RayActorError as error:  # lost beyond its restarts: the shard fails, a new actor joins
            outcome = ShardOutcome(error=f"worker lost {MAX_RETRIES + 1} times: {_first_line(error)}", retried=True)
            if id(actor) not in successor:  # its other shard fails too, and goes to the same new actor
                successor[id(actor)] = actors[actors.index(actor)] = new_actor()
            actor = successor[id(actor)]
        give(actor)
        on_result(index, part, outcome)


def _first_line(error: BaseException) -> str:
    from .._messages import one_line

    return one_line(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
