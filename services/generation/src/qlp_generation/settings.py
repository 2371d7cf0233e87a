from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class GenerationSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_GENERATION_", extra="ignore", populate_by_name=True
    )
    service_name: str = "generation"
    consumer_group_prefix: str = "generation"
    #: Reserve quota through billing's reservation saga before building (off only in
    #: tests of the service alone; a generation then reserves nothing).
    quota_enabled: bool = True
    #: How long POST /v1/generations waits for billing's answer so that "no quota" is
    #: a 429 problem; later answers still decide the job (it then fails, visibly).
    quota_wait_s: float = 10.0
    #: A running job whose worker has not finished by then may be taken over.
    lease_s: float = 300.0
    gate_cpu_s: int = 120
    gate_memory_mb: int = 2048
    gate_wall_s: float = 180.0
    #: Limits of rendering a marketplace template's pack (a child process; see
    #: render_limited.py): going over one fails the build.
    template_render_cpu_s: int = 10
    template_render_memory_mb: int = 1024
    template_render_wall_s: float = 30.0
    #: The optional LLM port (any OpenAI-compatible endpoint, e.g.
    #: ``http://llm:8000/v1``): refines the blueprint of a prompt before the build. Off
    #: while the URL is empty; the quality gate decides either way.
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_s: float = 30.0
    #: A replica may serve only the API (no worker consumer).
    worker_enabled: bool = True
    #: One generation at a time per consumer (a worker); replicas add workers.
    consumer_batch_max_records: int = 1
