"""Request and response bodies of the HTTP service."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodeRequest(_Strict):
    texts: list[str] = Field(..., description="Texts to encode.")
    precision: Literal["auto", "fp32", "bf16"] = "fp32"


class EncodeResponse(BaseModel):
    model: str
    dimension: int
    embeddings: list[list[float]]


class DecodeRequest(_Strict):
    vectors: list[list[float]] = Field(..., description="Embeddings [N, D].")
    decoder: Literal["phrase", "generative"] = "phrase"
    method: Literal["greedy", "weighted", "beam_search", "context_aware"] | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    max_new_tokens: int | None = Field(None, ge=1, le=128)
    num_beams: int | None = Field(None, ge=1, le=16)
    do_sample: bool | None = None
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    no_repeat_ngram_size: int | None = Field(None, ge=0)
    length_penalty: float | None = None
    num_return_sequences: int | None = Field(None, ge=1, le=16)
    seed: int | None = None


class DecodedText(BaseModel):
    text: str
    score: float | None
    method: str
    fallback_used: bool = False


class DecodeResponse(BaseModel):
    decoder: str
    results: list[DecodedText]


class RoundtripRequest(_Strict):
    texts: list[str]
    decoder: Literal["phrase", "generative"] = "phrase"


class RoundtripRow(BaseModel):
    input: str
    output: str
    cosine: float
    ms: float


class RoundtripResponse(BaseModel):
    decoder: str
    results: list[RoundtripRow]


class ErrorBody(BaseModel):
    error: str
    error_type: str
