"""Offline validation of STAC Items against the core schemas shipped with pystac and the
extension schemas committed under ``tests/data/stac-schemas`` (nothing is downloaded)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from pystac.validation.local_validator import get_local_schema_cache

SCHEMAS = Path(__file__).resolve().parent / "data" / "stac-schemas"
ITEM_SCHEMA = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
_FILE = re.compile(r"(?P<name>[a-z-]+)-v(?P<version>[\d.]+)\.json")


def _registry() -> referencing.Registry:
    resources = {
        uri: referencing.Resource.from_contents(schema, referencing.jsonschema.DRAFT7)
        for uri, schema in get_local_schema_cache().items()
    }
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        resource = referencing.Resource.from_contents(schema, referencing.jsonschema.DRAFT7)
        resources[schema["$id"].rstrip("#")] = resource
        # the file name says which release it is (one release's $id names the one before it)
        found = _FILE.fullmatch(path.name)
        assert found, path
        uri = f"https://stac-extensions.github.io/{found['name']}/v{found['version']}/schema.json"
        resources[uri] = resource
    return referencing.Registry().with_resources(resources.items())


def validate_item(item: dict[str, Any]) -> None:
    """Validate against the core Item schema and every extension schema the Item declares.

    Raises:
        jsonschema.ValidationError: The Item breaks one of them.
        referencing.exceptions.Unresolvable: It declares an extension not committed here.
    """
    registry = _registry()
    for uri in [ITEM_SCHEMA, *item["stac_extensions"]]:
        schema = registry.contents(uri.rstrip("#"))
        validator = jsonschema.validators.validator_for(schema)
        validator(schema, registry=registry).validate(item)
