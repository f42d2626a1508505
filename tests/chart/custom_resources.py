"""Schemas of the custom resources the chart can render, which kubernetes-validate does not know.

Each is the part of the CRD's structural schema (Prometheus Operator v1, KEDA v1alpha1) for the
fields the chart uses, strict like the CRDs (unknown fields are errors): a misspelled field or a
number where the CRD wants a string fails here as it would fail ``kubectl apply``.
"""

from __future__ import annotations

from typing import Any

import jsonschema

STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "labels": STRINGS,
        "annotations": STRINGS,
    },
    "additionalProperties": False,
}
SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": STRINGS,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}},
        }},
    },
    "additionalProperties": False,
}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                       "metadata": META, "spec": spec},
        "additionalProperties": False,
    }


SCHEMAS = {
    "ServiceMonitor": _resource("monitoring.coreos.com/v1", "ServiceMonitor", {
        "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
        "properties": {
            "selector": SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "interval": DURATION},
            }},
        },
    }),
    "PrometheusRule": _resource("monitoring.coreos.com/v1", "PrometheusRule", {
        "type": "object", "additionalProperties": False,
        "properties": {"groups": {"type": "array", "items": {
            "type": "object", "required": ["name", "rules"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": {
                "type": "object", "required": ["expr"], "additionalProperties": False,
                "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                               "expr": {"type": "string", "minLength": 1}, "for": DURATION,
                               "labels": STRINGS, "annotations": STRINGS},
            }}},
        }}},
    }),
    "ScaledObject": _resource("keda.sh/v1alpha1", "ScaledObject", {
        "type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
        "properties": {
            "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                               "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                              "apiVersion": {"type": "string"}}},
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer"},
            "cooldownPeriod": {"type": "integer"},
            # KEDA's CRD: advanced.horizontalPodAutoscalerConfig.behavior is the HPA's spec.behavior
            "advanced": {"type": "object", "additionalProperties": False, "properties": {
                "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False, "properties": {
                    "name": {"type": "string"},
                    "behavior": {"type": "object", "additionalProperties": False, "properties": {
                        "scaleUp": {"type": "object"}, "scaleDown": {"type": "object"}}},
                }},
            }},
            "triggers": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
                "properties": {"type": {"type": "string"}, "metadata": STRINGS,
                               "authenticationRef": {"type": "object", "required": ["name"],
                                                     "properties": {"name": {"type": "string"}}}},
            }},
        },
    }),
}


SCHEMAS["TriggerAuthentication"] = _resource("keda.sh/v1alpha1", "TriggerAuthentication", {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                           "key": {"type": "string"}},
        }},
        "env": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name"], "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                           "containerName": {"type": "string"}},
        }},
    },
})


def validate_custom_resource(doc: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError; KeyError for a kind this module does not know."""
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])
