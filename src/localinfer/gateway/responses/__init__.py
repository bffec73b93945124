"""OpenAI's Responses API, ``POST /v1/responses`` (Codex-style agents speak only this),
served through the chat path.

``input`` (a string, or items: messages with ``input_text``/``output_text`` parts,
``function_call`` and ``function_call_output`` items) and ``instructions`` become chat
messages; ``max_output_tokens``, ``temperature``, ``top_p``, function ``tools``,
``tool_choice`` and ``text.format`` map onto their chat twins, so the same 400s apply
(request_fields.py, and the router's capability check). The answer is a ``response``
object whose output items are a ``message`` and/or ``function_call`` items;
``stream: true`` sends the typed SSE events (``response.created`` …
``response.completed``, each with a ``sequence_number``).

``previous_response_id`` continues a conversation kept in memory for the gateway's life
(``ResponseStore``: bounded, oldest dropped first); an id not kept (never made, made with
``store: false``, or dropped) is a 400 ``previous_response_not_found``. What cannot be
honoured is refused with a 400 naming the field (``REFUSED``), never dropped.

Modules, one job each: ``request`` (the body and its refusals), ``items`` (input items →
chat messages), ``tools`` (tools, tool_choice, text.format), ``turn`` (the translation and
the response object), ``output`` (output items and usage), ``events`` (the SSE writer),
``store`` (previous_response_id), ``route`` (the routes), ``schema`` (for /openapi.json).
"""

from .request import ResponsesRequest
from .route import response_routes
from .schema import response_object, schema_overrides
from .store import ResponseStore

__all__ = ["ResponseStore", "ResponsesRequest", "response_object", "response_routes",
           "schema_overrides"]
