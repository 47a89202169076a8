"""Make the generated OpenAPI document say exactly what the API sends, so clients and schemathesis can
trust it.

Pydantic marks `datetime.time` fields `format: time`, which JSON Schema reads as RFC 3339 *full-time*
(with an offset). Our times of day are Asia/Shanghai wall-clock values ("07:00:00"), i.e. RFC 3339
*partial-time*; say so.
"""


def _walk(node) -> None:
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "time":
            node["format"] = "partial-time"
            node.setdefault("description", "local time of day, Asia/Shanghai (HH:MM[:SS])")
        for v in node.values():
            _walk(v)
    elif isinstance(node, list):
        for v in node:
            _walk(v)


def install(app) -> None:
    generate = app.openapi

    def openapi():
        schema = generate()
        _walk(schema)
        return schema

    app.openapi = openapi
