"""Load test for shoal (the seed's Step 5.3, fixed to really drive CPU).

The seed's locustfile only hit /api/tags, which costs the server no CPU, so it could never
trigger CPU-based scaling. This one mostly sends POST /api/generate, which makes the
workload (and real Ollama) burn CPU, through HAProxy.

    pip install locust
    locust -f loadtest/locustfile.py --headless --users 50 --spawn-rate 10 \
        --host http://127.0.0.1:11434 --run-time 5m

SHOAL_WORK_MS sets the CPU milliseconds each generate request burns in the test workload
(default 200; real Ollama ignores the field and generates for the prompt instead).
"""

import os

from locust import HttpUser, between, task

WORK_MS = int(os.environ.get("SHOAL_WORK_MS", "200"))


class OllamaUser(HttpUser):
    wait_time = between(0.1, 0.5)

    @task(10)
    def generate(self):
        self.client.post(
            "/api/generate",
            json={"model": "shoal-workload", "prompt": "Why is the sky blue?", "stream": False, "work": WORK_MS},
            name="/api/generate",
        )

    @task(1)
    def tags(self):
        self.client.get("/api/tags")
