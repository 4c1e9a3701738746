"""Verifies Gatehouse access tokens with PyJWT, an implementation independent of ours, using only
the published JWKS document. Reads {"jwks", "tokens", "issuer", "audience"} as JSON on stdin and
prints, per token, its claims or the error PyJWT raised. Exits 2 if PyJWT is not installed."""

import json
import sys

try:
    import jwt
except ImportError:
    print("PyJWT is not installed: pip install pyjwt", file=sys.stderr)
    sys.exit(2)

request = json.load(sys.stdin)
keys = jwt.PyJWKSet.from_dict(request["jwks"])
results = []
for token in request["tokens"]:
    try:
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in keys.keys if k.key_id == kid)
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=["EdDSA"],
            audience=request["audience"],
            issuer=request["issuer"],
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        results.append({"ok": True, "claims": claims})
    except StopIteration:
        results.append({"ok": False, "error": "kid not in the JWKS document"})
    except jwt.PyJWTError as e:
        results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
print(json.dumps(results))
