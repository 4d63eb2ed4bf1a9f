"""The endpoints of declared tasks (issue 16): `/v1/<endpoint>` for each task of `data.tasks` the bundle was
trained for, with a request schema that lists its data sets' own fields.

The bundle records each trained task (`preprocessing_state["tasks"]`, written by cluster.trainer.served_tasks):
its kind, head, endpoint, data sets, class names, and each declared data set's columns by role. A request
gives those columns by their own names (text columns as strings, numeric as numbers, categorical as strings,
null or absent = missing, at least one given); it is preprocessed as training preprocessed the file's rows
(text columns joined by `actors.declaration.join_text`, tabular values through the bundle's fitted state).
A task over several data sets takes `dataset` in the request (a discriminated union in OpenAPI) and every
answer says which data set was used. Image columns and movement tasks are not served here (the built-in
stock endpoint serves StockNet-shaped bars).
"""

import re
import time
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from actors.declaration import join_text
from actors.tabular import TabularRejected
from serve.preprocess import InputError, Preprocessor, Query, Row
from serve.schemas import Number, Response

BUILTIN_ENDPOINTS = ("credit-risk", "stock-movement", "sentiment", "customer-service")
"""Served by their own routes (serve/api.py), with their own answers."""
SERVED_KINDS = ("binary_risk", "multi_class")


class DeclaredResponse(Response):
    task: str = Field(description="The task that answered")
    dataset: str = Field(description="The data set whose fields and fitted preprocessing were used")
    label: str = Field(description="The predicted class (the declaration's class name)")
    probabilities: dict[str, float] = Field(description="Probability of each class, by class name")
    probability: float | None = Field(None, description="Binary tasks: the probability of the positive class")


class _DeclaredBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, populate_by_name=False)

    @model_validator(mode="after")
    def _one_given(self):
        if all(getattr(self, n) is None for n in type(self).model_fields if n != "dataset"):
            raise PydanticCustomError("no_field", "every field is missing: give at least one a value (null means "
                                                  "missing)")
        return self


def _python_name(column: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", column) or "field"
    name = f"f_{name}" if name[0].isdigit() or name.startswith("_") or name in ("dataset", "model_config") else name
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def fields_of(entry: dict, dataset: str) -> dict[str, list[str]]:
    """A data set's served columns by role (text, numeric, categorical) from the bundle's task entry."""
    fields = entry.get("fields", {}).get(dataset, {})
    return {role: list(fields.get(role, [])) for role in ("text", "numeric", "categorical")}


def request_model(task: str, entry: dict, text_type: Any) -> Any:
    """The request model of a declared task: per data set one model of its own columns (by alias = the column
    name), a union on `dataset` when there are several."""
    models = []
    datasets = [d for d in entry["datasets"] if d in entry.get("fields", {})]
    for dataset in datasets:
        fields: dict[str, Any] = {}
        taken: set[str] = set()
        tag = Literal[dataset]  # type: ignore[valid-type]
        fields["dataset"] = ((tag, Field(description=f"The data set: {dataset!r}")) if len(datasets) > 1 else
                             (tag | None, Field(None, description=f"The data set (only {dataset!r} is served)")))
        roles = fields_of(entry, dataset)
        for column in roles["text"]:
            fields[_python_name(column, taken)] = (text_type | None, Field(None, alias=column,
                                                   description=f"text column {column!r}"))
        for column in roles["numeric"]:
            fields[_python_name(column, taken)] = (Number | None, Field(None, alias=column,
                                                   description=f"numeric column {column!r}; null = missing"))
        for column in roles["categorical"]:
            fields[_python_name(column, taken)] = (str | None, Field(None, alias=column,
                                                   description=f"categorical column {column!r}; null = missing"))
        suffix = "".join(p.title() for p in task.split("_")) + ("".join(p.title() for p in dataset.split("_"))
                                                               if len(datasets) > 1 else "")
        models.append(create_model(f"{suffix}Request", __base__=_DeclaredBase, **fields))
    if not models:
        raise ValueError(f"task {task!r} has no declared data set with fields in the bundle")
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="dataset")]  # noqa: UP007


class DeclaredTask:
    """One declared task's endpoint: preprocess the request's fields, one backbone query, the class answer."""

    def __init__(self, name: str, entry: dict, pre: Preprocessor, infer):
        self.name, self.entry, self.pre, self.infer = name, entry, pre, infer
        self.head: str = entry["head"]
        self.classes: list[str] = list(entry.get("classes") or [])

    def row(self, dataset: str, values: dict[str, Any]) -> Row:
        roles = fields_of(self.entry, dataset)
        cols: dict[str, Any] = {}
        tab = self.pre.tabular.get(dataset)
        tabular = None
        if tab is not None:
            record = {f"num__{c}": values[c] for c in roles["numeric"] if values.get(c) is not None}
            record |= {f"cat__{c}": values[c] for c in roles["categorical"] if values.get(c) is not None}
            try:
                cols.update({k: v for k, v in tab.transform_one(record).items()
                             if k in ("tab_numeric", "tab_numeric_missing", "tab_categorical")})
                tabular = dataset
            except TabularRejected:  # every tabular field missing: the row has text only
                pass
        tokens = None
        if roles["text"]:
            text = join_text(roles["text"], [values.get(c) for c in roles["text"]])
            if text:
                t, tokens = self.pre._text(text, ("body", roles["text"][0]))
                cols.update(t)
        if not cols:
            raise InputError("no usable field: give a text or a tabular value", ("body",), 422)
        return Row(cols, tabular, tokens)

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        datasets = [d for d in self.entry["datasets"] if d in self.entry.get("fields", {})]
        dataset = req.get("dataset") or datasets[0]
        try:
            row = self.row(dataset, {k: v for k, v in req.items() if k != "dataset"})
        except InputError as exc:
            return {"error": exc.to_dict()}
        pre_ms = round((time.perf_counter() - t0) * 1000, 2)
        out = await self.infer(Query(row, (self.head,)))
        probs = out["heads"][self.head]["probs"]
        if self.entry["kind"] == "binary_risk":
            p = float(probs)
            values = [1 - p, p]
        else:
            values = [float(v) for v in probs]
        names = self.entry.get("dataset_classes", {}).get(dataset) or self.classes
        names = names if len(names) == len(values) else [str(i) for i in range(len(values))]
        k = max(range(len(values)), key=values.__getitem__)
        result = {"task": self.name, "dataset": dataset, "label": names[k],
                  "probabilities": dict(zip(names, values, strict=True)),
                  "probability": values[1] if self.entry["kind"] == "binary_risk" else None}
        return {"result": result, "batch_size": out["batch_size"],
                "timing": {"preprocess": pre_ms, "backbone": out["backbone_ms"],
                           "task": round((time.perf_counter() - t0) * 1000, 2)}}


def declared_tasks(pre: Preprocessor, infer) -> dict[str, DeclaredTask]:
    """endpoint -> task, for every task of the bundle that is not built-in and whose kind is served here."""
    out = {}
    for name, entry in pre.tasks.items():
        if (entry.get("endpoint") not in BUILTIN_ENDPOINTS and entry.get("kind") in SERVED_KINDS
                and any(d in entry.get("fields", {}) for d in entry.get("datasets", []))):
            out[entry["endpoint"]] = DeclaredTask(name, entry, pre, infer)
    return out


def add_declared_routes(app, tasks: dict[str, DeclaredTask], text_type: Any, answer, retry) -> None:
    """Register POST /v1/<endpoint> for each declared task on `app` (build_api's app, its error handlers)."""
    from fastapi import Request

    for endpoint, task in tasks.items():
        body_type = request_model(task.name, task.entry, text_type)

        def make(task=task, body_type=body_type):
            async def handler(body: body_type, request: Request):  # type: ignore[valid-type]
                t0 = time.perf_counter()
                payload = body.model_dump(by_alias=True)
                return answer(await retry(task.predict, payload), request, t0)

            return handler

        title = task.entry.get("title") or task.name
        app.post(f"/v1/{endpoint}", response_model=DeclaredResponse, tags=["tasks"], name=task.name,
                 summary=f"{title} (declared task {task.name})",
                 description=f"{task.entry['kind']} over {', '.join(task.entry['datasets'])}; classes: "
                             f"{', '.join(task.classes)}. The request lists the data set's own columns.")(make())


def endpoint_info(pre: Preprocessor | None, credit_features) -> list[dict]:
    """What /v1/models says about the served task endpoints: path, task, kind, data sets with their fields."""
    if pre is None:
        return []
    out = []
    sets = credit_features if isinstance(credit_features, dict) else (
        {pre.credit_dataset: credit_features} if pre.credit_dataset else {})
    if sets:
        out.append({"path": "/v1/credit-risk", "task": "credit_risk", "kind": "binary_risk",
                    "datasets": {d: {"features": [f["name"] for f in fs]} for d, fs in sets.items()}})
    for name, entry in pre.tasks.items():
        if entry.get("endpoint") in BUILTIN_ENDPOINTS or entry.get("kind") not in SERVED_KINDS:
            continue
        out.append({"path": f"/v1/{entry['endpoint']}", "task": name, "kind": entry["kind"],
                    "classes": entry.get("classes"),
                    "datasets": {d: fields_of(entry, d) for d in entry["datasets"] if d in entry.get("fields", {})}})
    return out
