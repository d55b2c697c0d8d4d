"""Bodies larger than MAX_BODY_BYTES get a 413 problem before they are read (design.md, HTTP API), even
from a caller without a token."""


class CountingBody:
    """A request body sent in 1 MiB chunks, counting how many the server pulled."""

    def __init__(self, megabytes: int) -> None:
        self.megabytes, self.pulled = megabytes, 0

    async def __aiter__(self):
        for _ in range(self.megabytes):
            self.pulled += 1
            yield b"x" * (1024 * 1024)


async def test_an_unauthenticated_100_mb_body_with_its_length_is_a_413_without_reading_it(intake):
    body = CountingBody(100)
    answer = await intake.client.post(
        "/v1/service-requests", content=body, headers={"Content-Length": str(100 * 1024 * 1024)}
    )
    assert answer.status_code == 413 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["max_body_bytes"] == intake.settings.max_body_bytes == 1024 * 1024
    assert body.pulled <= 1, "the body was read"


async def test_a_chunked_body_is_cut_off_at_the_limit_with_a_413(intake):
    body = CountingBody(100)
    answer = await intake.client.post("/v1/service-requests", content=body, headers=intake.agent)
    assert answer.status_code == 413 and answer.json()["status"] == 413
    assert body.pulled <= 3, f"{body.pulled} MiB were read"


async def test_a_body_within_the_limit_is_served(intake):
    assert (await intake.open()).status_code == 201


async def test_a_small_content_length_beside_a_transfer_encoding_does_not_lift_the_limit(intake):
    """h11 frames such a request by its Transfer-Encoding, not its Content-Length: the body is counted."""
    body = CountingBody(100)
    answer = await intake.client.post(
        "/v1/service-requests",
        content=body,
        headers={**intake.agent, "Content-Length": "10", "Transfer-Encoding": "chunked"},
    )
    assert answer.status_code == 413 and answer.json()["status"] == 413
    assert body.pulled <= 3, f"{body.pulled} MiB were read"
