"""The test services are real: a redis-server answering PING and a moto S3 endpoint over HTTP."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiobotocore.session import get_session


async def test_redis_server_answers(redis_server):
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_moto_server_speaks_s3(moto_server, bucket_name):
    session = get_session()
    async with session.create_client(
        "s3", region_name="us-west-2", endpoint_url=moto_server.endpoint_url
    ) as s3:
        await s3.create_bucket(
            Bucket=bucket_name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
        )
        await s3.put_object(Bucket=bucket_name, Key="node/latest.txt", Body=b"1717761600")
        got = await s3.get_object(Bucket=bucket_name, Key="node/latest.txt")
        async with got["Body"] as body:
            assert await body.read() == b"1717761600"
