from openai import OpenAI
c = OpenAI(base_url="http://127.0.0.1:18902/v1", api_key="unused", max_retries=0)
try:
    with c.responses.stream(model="resp:slowstream", input="hi") as s:
        for e in s: print(e.type, e.sequence_number)
except Exception as e: print("EXC", type(e).__name__, str(e)[:150])
