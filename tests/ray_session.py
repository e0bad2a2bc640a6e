"""One local Ray (2 CPUs) for a test module, with the test modules its workers need sent by value."""

import contextlib


@contextlib.contextmanager
def local_ray(*modules):
    """Start a local Ray with 2 CPUs; ``modules`` (test modules) are pickled by value to its workers."""
    import ray

    for module in modules:
        ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()  # the actors kept by the module's runs end with it; the next module's runs start their own
