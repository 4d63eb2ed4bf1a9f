"""The one task registry: the four built-in tasks as default declarations, plus those declared in config.

A task (`actors.declaration.TaskDeclaration`) names its head kind, its data sets, its endpoint and its
selection metric. `task_registry(data)` is read everywhere a task is looked up: finetuning (cluster/tasks.py),
evaluation and serving (through the bundle, which records the registry entries of the tasks it was trained
for). Class counts and names are not written here: they come from the data sets' label mappings (the
prepared manifests' `classes`).
"""

from __future__ import annotations

from actors.declaration import TaskDeclaration

BUILTIN_TASKS: dict[str, TaskDeclaration] = {
    "credit_risk": TaskDeclaration(kind="binary_risk", datasets=["lending_club"], endpoint="credit-risk",
                                   selection_metric="auc", head="credit_risk", title="Credit risk"),
    "stock_movement": TaskDeclaration(kind="movement", datasets=["stocknet"], endpoint="stock-movement",
                                      selection_metric="accuracy", head="stock_movement", title="Stock movement"),
    "sentiment": TaskDeclaration(kind="multi_class", datasets=["financial_phrasebank", "fincuge_finfe"],
                                 endpoint="sentiment", selection_metric="accuracy", head="sentiment",
                                 title="Financial sentiment"),
    "customer_service": TaskDeclaration(kind="multi_class", datasets=["banking77"], endpoint="customer-service",
                                        selection_metric="accuracy", head="intent", title="Customer service"),
}
"""The built-in tasks, declared as a user's would be. Their head names are registered heads (model/heads.py)
whose outputs the built-in endpoints read; a declared task's head is named after the task."""


def task_registry(data) -> dict[str, TaskDeclaration]:
    """Every task this config knows (`data`: actors.settings.DataSection): the built-ins, then `data.tasks`;
    each declared data set whose `task:` names one is appended to that task's data sets. Head names and
    endpoints are filled in."""
    out: dict[str, TaskDeclaration] = {}
    for name, task in {**BUILTIN_TASKS, **data.tasks}.items():
        out[name] = task.model_copy(update={"head": task.head or name, "endpoint": task.endpoint_path(name),
                                            "datasets": list(task.datasets)})
    for dataset, block in data.declared.items():
        if block.task in out and dataset not in out[block.task].datasets:
            out[block.task].datasets.append(dataset)
    return out


def check_tasks(data) -> None:
    """Raise ValueError naming the key when a declared task cannot work: a built-in name, an unknown data set,
    an endpoint used twice, a head shared by tasks of different kinds, a data set's `task:` that names no task
    or a binary task's data set without a positive class."""
    import difflib

    known_sets = data.dataset_names()
    for name, task in data.tasks.items():
        if name in BUILTIN_TASKS:
            raise ValueError(f"data.tasks.{name}: {name!r} is a built-in task; give yours another name (or feed the "
                             f"built-in one by setting `task: {name}` on your data set)")
        for dataset in task.datasets:
            if dataset not in known_sets:
                close = difflib.get_close_matches(dataset, known_sets, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"data.tasks.{name}.datasets: unknown data set {dataset!r}{hint} Known: "
                                 f"{', '.join(known_sets)}")
    registry = task_registry(data)
    endpoints: dict[str, str] = {}
    heads: dict[str, tuple[str, str]] = {}
    for name, task in registry.items():
        if task.endpoint in endpoints:
            raise ValueError(f"data.tasks.{name}.endpoint: /v1/{task.endpoint} already serves task "
                             f"{endpoints[task.endpoint]!r}; give each task its own endpoint")
        endpoints[task.endpoint] = name
        other, kind = heads.setdefault(task.head, (name, task.kind))
        if kind != task.kind:  # one head may be trained by two tasks (German Credit's CV), of one kind only
            raise ValueError(f"data.tasks.{name}.head: {task.head!r} is the {kind} head of task {other!r}, and "
                             f"{name!r} is {task.kind}; name the head after the task (leave head empty)")
    for dataset, block in data.declared.items():
        if block.task is not None and block.task not in registry:
            close = difflib.get_close_matches(block.task, list(registry), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"data.declared.{dataset}.task: unknown task {block.task!r}{hint} Tasks: "
                             f"{', '.join(registry)} (declare your own under data.tasks)")
        if block.task is not None:
            kind = registry[block.task].kind
            binary = block.label.positive is not None
            if kind == "binary_risk" and not binary:
                raise ValueError(f"data.declared.{dataset}.label.positive: task {block.task!r} is binary_risk, so the "
                                 f"label needs two classes and a positive one (e.g. positive: default)")
