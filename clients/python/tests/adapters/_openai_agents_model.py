"""A scripted Agents SDK ``Model`` for the OpenAI Agents adapter's tests:
no provider is ever called. Each model call plays the next *turn*: a list
of parts streamed as Responses API events, in pieces — reasoning summary
text, answer text, function calls whose arguments arrive in several
deltas — then ``response.completed`` with the turn's usage. A ``Pause``
part sleeps in the middle of the stream (the cancel test stops the run
there); ``StubModel.cancelled`` records that the stream was torn down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, List, Sequence, Tuple, Union

from agents import Model, ModelResponse, Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Summary
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

MODEL_NAME = "stub-model"


@dataclass
class Reasoning:
    pieces: Sequence[str]


@dataclass
class Text:
    pieces: Sequence[str]


@dataclass
class Call:
    name: str
    pieces: Sequence[str]  # the arguments' JSON text, in deltas
    call_id: str


@dataclass
class Pause:
    seconds: float


Part = Union[Reasoning, Text, Call, Pause]


@dataclass
class Turn:
    parts: Sequence[Part]
    input_tokens: int = 10
    output_tokens: int = 5
    reasoning_tokens: int = 0


@dataclass
class StubModel(Model):
    turns: List[Turn]
    #: The input of every model call, in order.
    inputs: List[Any] = field(default_factory=list)
    #: How many turns were torn down before their end (cancelled).
    cancelled: int = 0

    def _next(self, input: Any) -> Turn:
        self.inputs.append(input)
        if not self.turns:
            raise AssertionError(f"the model was called once more than scripted, with {input!r}")
        return self.turns.pop(0)

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema,
                           handoffs, tracing, *, previous_response_id=None, conversation_id=None,
                           prompt=None) -> ModelResponse:
        turn = self._next(input)
        items = [item for _, item in _items(turn) if item is not None]
        return ModelResponse(output=items, usage=Usage(requests=1, input_tokens=turn.input_tokens,
                                                       output_tokens=turn.output_tokens,
                                                       total_tokens=turn.input_tokens + turn.output_tokens),
                             response_id=None)

    async def stream_response(self, system_instructions, input, model_settings, tools, output_schema,
                              handoffs, tracing, *, previous_response_id=None, conversation_id=None,
                              prompt=None) -> AsyncIterator[Any]:
        turn = self._next(input)
        seq = iter(range(10_000))
        yield ResponseCreatedEvent(type="response.created", response=_response([], None, "in_progress"),
                                   sequence_number=next(seq))
        done: List[Any] = []
        finished = False
        try:
            for index, (part, item) in enumerate(_items(turn)):
                if isinstance(part, Pause):
                    await asyncio.sleep(part.seconds)
                    continue
                index = len(done)
                yield ResponseOutputItemAddedEvent(type="response.output_item.added", item=_in_progress(item),
                                                   output_index=index, sequence_number=next(seq))
                for piece in part.pieces:
                    if isinstance(part, Reasoning):
                        yield ResponseReasoningSummaryTextDeltaEvent(
                            type="response.reasoning_summary_text.delta", item_id=item.id, output_index=index,
                            summary_index=0, delta=piece, sequence_number=next(seq))
                    elif isinstance(part, Text):
                        yield ResponseTextDeltaEvent(
                            type="response.output_text.delta", item_id=item.id, output_index=index,
                            content_index=0, delta=piece, logprobs=[], sequence_number=next(seq))
                    else:
                        yield ResponseFunctionCallArgumentsDeltaEvent(
                            type="response.function_call_arguments.delta", item_id=item.id,
                            output_index=index, delta=piece, sequence_number=next(seq))
                    await asyncio.sleep(0)
                yield ResponseOutputItemDoneEvent(type="response.output_item.done", item=item, output_index=index,
                                                  sequence_number=next(seq))
                done.append(item)
            yield ResponseCompletedEvent(type="response.completed", response=_response(done, turn, "completed"),
                                         sequence_number=next(seq))
            finished = True
        finally:
            if not finished:
                self.cancelled += 1


def _items(turn: Turn) -> List[Tuple[Part, Any]]:
    items: List[Tuple[Part, Any]] = []
    for n, part in enumerate(turn.parts):
        if isinstance(part, Reasoning):
            item: Any = ResponseReasoningItem(id=f"rs_{n}", type="reasoning",
                                              summary=[Summary(text="".join(part.pieces), type="summary_text")])
        elif isinstance(part, Text):
            item = ResponseOutputMessage(
                id=f"msg_{n}", type="message", role="assistant", status="completed",
                content=[ResponseOutputText(text="".join(part.pieces), type="output_text", annotations=[],
                                            logprobs=[])])
        elif isinstance(part, Call):
            item = ResponseFunctionToolCall(id=f"fc_{n}", call_id=part.call_id, type="function_call",
                                            name=part.name, arguments="".join(part.pieces), status="completed")
        else:
            item = None
        items.append((part, item))
    return items


def _in_progress(item: Any) -> Any:
    if isinstance(item, ResponseOutputMessage):
        return item.model_copy(update={"content": [], "status": "in_progress"})
    if isinstance(item, ResponseReasoningItem):
        return item.model_copy(update={"summary": []})
    if isinstance(item, ResponseFunctionToolCall):
        return item.model_copy(update={"arguments": "", "status": "in_progress"})
    return item


def _response(output: List[Any], turn: Any, status: str) -> Response:
    usage = None
    if turn is not None:
        usage = ResponseUsage(
            input_tokens=turn.input_tokens, output_tokens=turn.output_tokens,
            total_tokens=turn.input_tokens + turn.output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=turn.reasoning_tokens))
    return Response(id="resp_stub", created_at=0, model=MODEL_NAME, object="response", output=output,
                    tool_choice="auto", tools=[], top_p=None, parallel_tool_calls=False, status=status,
                    usage=usage)
