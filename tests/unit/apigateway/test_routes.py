"""Route matching as API Gateway does it: literal before {param} before {proxy+}, a method before ANY."""

from __future__ import annotations

import pytest

from lambdalab.apigateway.routes import (
    Integration,
    Method,
    Resource,
    RestApi,
    RouteTable,
    Stage,
    resource_for,
    table_from_api,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:products:live"
URI = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{FN}/invocations"


def _method(verb: str) -> Method:
    return Method(verb, Integration("AWS_PROXY", URI, "POST"))


RESOURCES = (
    Resource("r0", "/", {}),
    Resource("r1", "/products", {"GET": _method("GET"), "POST": _method("POST")}),
    Resource("r2", "/products/{id}", {"GET": _method("GET")}),
    Resource("r3", "/products/special", {"GET": _method("GET")}),
    Resource("r4", "/files/{proxy+}", {"ANY": _method("ANY")}),
    Resource("r5", "/{proxy+}", {"GET": _method("GET")}),
)


def _table() -> RouteTable:
    return RouteTable({"api1": RestApi("api1", "lab", RESOURCES, {"lab": Stage("lab", {"alias": "live"})})})


@pytest.mark.parametrize(
    ("path", "resource", "params"),
    [
        ("/products", "/products", {}),
        ("/products/", "/products", {}),
        ("/products/42", "/products/{id}", {"id": "42"}),
        ("/products/special", "/products/special", {}),
        ("/products/a%20b", "/products/{id}", {"id": "a b"}),
        ("/files/a/b/c.txt", "/files/{proxy+}", {"proxy": "a/b/c.txt"}),
        ("/products/42/reviews", "/{proxy+}", {"proxy": "products/42/reviews"}),
        ("/other", "/{proxy+}", {"proxy": "other"}),
    ],
)
def test_the_most_specific_resource_wins(path: str, resource: str, params: dict[str, str]) -> None:
    found = resource_for(RESOURCES, path)
    assert found is not None
    assert found[0].path == resource
    assert found[1] == params


def test_greedy_parameter_needs_at_least_one_segment() -> None:
    assert resource_for([Resource("r", "/files/{proxy+}", {})], "/files") is None
    assert resource_for([Resource("r", "/files/{proxy+}", {})], "/files/") is None


def test_method_then_any_then_no_match() -> None:
    table = _table()
    assert table.match("api1", "lab", "get", "/products").method.http_method == "GET"  # type: ignore[union-attr]
    assert table.match("api1", "lab", "DELETE", "/files/x").method.http_method == "ANY"  # type: ignore[union-attr]
    assert table.match("api1", "lab", "DELETE", "/products/42") is None  # resource exists, method does not
    assert table.match("api1", "prod", "GET", "/products") is None  # unknown stage
    assert table.match("nope", "lab", "GET", "/products") is None  # unknown API
    assert table.match("api1", "lab", "POST", "/") is None  # the root has no methods


def test_integration_uri_names_the_qualified_function_and_takes_stage_variables() -> None:
    assert Integration("AWS_PROXY", URI).function_arn({}) == FN
    templated = URI.replace(":live/", ":${stageVariables.alias}/")
    assert Integration("AWS_PROXY", templated).function_arn({"alias": "blue"}) == FN.replace("live", "blue")
    assert Integration("HTTP_PROXY", "https://example.com/{proxy}").function_arn({}) is None


def test_table_from_the_management_api_shapes() -> None:
    # GIVEN GetRestApis / GetResources / GetStages items as boto3 returns them
    apis = [{"id": "abc", "name": "lab", "binaryMediaTypes": ["image/png"]}]
    resources = [
        {"id": "root", "path": "/"},
        {
            "id": "res1",
            "path": "/products/{id}",
            "resourceMethods": {
                "GET": {
                    "httpMethod": "GET",
                    "authorizationType": "NONE",
                    "methodIntegration": {"type": "AWS_PROXY", "uri": URI, "httpMethod": "POST"},
                }
            },
        },
    ]
    stages = [{"stageName": "lab", "deploymentId": "d1", "variables": {"a": "b"}}]
    # WHEN the table is built
    table = table_from_api(apis, lambda api_id: (resources, stages))
    # THEN the route, its integration and the stage variables are there
    match = table.match("abc", "lab", "GET", "/products/7")
    assert match is not None
    assert match.path_parameters == {"id": "7"}
    assert match.method.integration is not None
    assert match.method.integration.function_arn(match.stage.variables) == FN
    assert match.stage.variables == {"a": "b"}
    assert match.api.binary_media_types == ("image/png",)
