"""The baseline for single-lead intake: the least a Django view can do for a POSTed lead, i.e. parse the JSON
body and INSERT one row, behind the same middleware stack as the product."""

import json

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

TABLE = "bench_baseline_insert"
TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} "
    "(id bigserial PRIMARY KEY, body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
)


@csrf_exempt
@require_POST
def insert_one(request):
    payload = json.loads(request.body)
    if not isinstance(payload, dict):
        return JsonResponse({"detail": "Expected a JSON object."}, status=400)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (body) VALUES (%s::jsonb) RETURNING id", [json.dumps(payload)])
        (row_id,) = cursor.fetchone()
    return JsonResponse({"id": row_id}, status=201)
