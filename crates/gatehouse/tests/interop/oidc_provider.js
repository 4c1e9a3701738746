// A certified OpenID provider for the integration tests: `oidc-provider` from npm (pinned by the
// test harness), on 127.0.0.1. Usage:
//   node oidc_provider.js CONFIG_JSON_FILE
// CONFIG: {"port": n, "clients": [{client_id, client_secret, redirect_uris, ...}],
//          "accounts": {"alice": {"email": ..., "email_verified": true, "name": ...}},
//          "access_token_ttl": seconds, "refresh_token_ttl": seconds, "id_token_ttl": seconds,
//          "signing_key": a private RSA JWK (else one is generated at start)}
// Prints "ready" once listening. The provider signs with that one RS256 key (its JWKS publishes
// its public half).
//
// Logging in and consenting need no browser: /interaction/:uid logs in the account named by
// `?account=` on that URL (else the request's login_hint, else the first account) and grants
// every scope and claim asked for, answering with the provider's redirect each time.
//
// Test controls, outside the provider's own routes:
//   GET  /test/stats             {"token": {grant_type: n, "all": n}, "revocation": n,
//                                "issued": {"access": [...], "refresh": [...]}}: every request to
//                                the token endpoint, counted before it is handled, and every
//                                token it issued (so a test can look for them elsewhere)
//   POST /test/fail?mode=M       the token endpoint answers every request with M until
//                                mode=none: "invalid_grant" (400, OAuth error), "server_error"
//                                (500, HTML), "garbage" (200, not JSON), "slow" (waits 30 s)
//   POST /test/id_token          body JSON, one-shot: the next answer of the token endpoint that
//                                carries an ID token carries instead (the genuine one is still
//                                listed in stats.issued.id; stats.swapped counts the swaps):
//                                {"token": JWT}          that token, verbatim;
//                                {"claims": {...}}       the genuine token's claims with these
//                                                        overridden, re-signed by the provider's
//                                                        own key, under its header;
//                                {"alg": "none"}         the genuine claims, unsecured (jose's
//                                                        UnsecuredJWT);
//                                {"alg": "HS256", "key": "pem" | "jwk"}  the genuine claims, an
//                                                        HMAC keyed with the provider's public key
//                                                        (its SPKI PEM, or its public JWK's JSON),
//                                                        under the key's kid (the `alg` swap).
//                                Minted with `jose`, the provider's own dependency.
//   POST /test/id_token_ttl?seconds=N   ID tokens issued from now on live N seconds
//   GET  /test/signing_key       the provider's private JWK (for a second instance that signs
//                                with the same key under another issuer)
"use strict";
const fs = require("fs");
const http = require("http");
const { pathToFileURL } = require("url");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};
const issuer = `http://127.0.0.1:${config.port}`;
const stats = {
  token: { all: 0 },
  revocation: 0,
  issued: { access: [], refresh: [], id: [] },
  swapped: 0,
};
let failMode = "none";
let idTokenTtl = config.id_token_ttl || 3600;
let swap = null;

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

// The provider's signing key: the private JWK it is configured with, the key objects the
// harness signs with, and the public key's bytes an `alg` swap keys its HMAC with.
async function signingKeys(jose) {
  let jwk = config.signing_key;
  if (!jwk) {
    const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
    jwk = { ...(await jose.exportJWK(privateKey)), kid: "harness-rs256", alg: "RS256", use: "sig" };
  }
  const publicJwk = { kty: jwk.kty, n: jwk.n, e: jwk.e, kid: jwk.kid, alg: jwk.alg, use: jwk.use };
  const publicKey = await jose.importJWK(publicJwk, "RS256", { extractable: true });
  return {
    jwk,
    privateKey: await jose.importJWK(jwk, "RS256"),
    publicPem: await jose.exportSPKI(publicKey),
    publicJwkJson: JSON.stringify(publicJwk),
  };
}

// The ID token the provider answers instead of `genuine`, as `s` (see /test/id_token) says.
async function swapped(jose, keys, genuine, s) {
  if (s.token) return s.token;
  const claims = jose.decodeJwt(genuine);
  const header = jose.decodeProtectedHeader(genuine);
  if (s.claims) {
    return new jose.SignJWT({ ...claims, ...s.claims }).setProtectedHeader(header).sign(keys.privateKey);
  }
  if (s.alg === "none") return new jose.UnsecuredJWT(claims).encode();
  if (s.alg === "HS256") {
    const secret = s.key === "jwk" ? keys.publicJwkJson : keys.publicPem;
    return new jose.SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", kid: header.kid, typ: "JWT" })
      .sign(new TextEncoder().encode(secret));
  }
  throw new Error(`unknown swap ${JSON.stringify(s)}`);
}

async function main() {
  const entry = require.resolve("oidc-provider");
  const { default: Provider } = await import(pathToFileURL(entry).href);
  const jose = await import(pathToFileURL(require.resolve("jose")).href);
  const keys = await signingKeys(jose);
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys: [keys.jwk] },
    findAccount: async (ctx, sub) => {
      if (!accounts[sub]) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, ...accounts[sub] }),
      };
    },
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name"],
    },
    scopes: ["openid", "offline_access", "email", "profile", "crm.read", "crm.write"],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: config.access_token_ttl || 60,
      AuthorizationCode: 60,
      RefreshToken: config.refresh_token_ttl || 86400,
      IdToken: () => idTokenTtl,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
    },
    issueRefreshToken: async (ctx, client, code) =>
      client.grantTypeAllowed("refresh_token") && code.scopes.has("offline_access"),
    rotateRefreshToken: () => true,
    cookies: { keys: ["gatehouse-tests-only"] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  // Plain http on loopback: the provider's cookies are not `secure` here.
  provider.use(async (ctx, next) => {
    if (ctx.method === "POST" && ctx.path === "/token") {
      // Counted before anything is handled, by grant type read from the request itself: a
      // test's "never exchanged" holds only if no request of that grant arrived at all. The
      // body read here is handed to the provider as already read (its documented fallback).
      const raw = await readBody(ctx.req);
      ctx.req.body = raw;
      const grantType = new URLSearchParams(raw).get("grant_type");
      stats.token.all += 1;
      if (grantType) stats.token[grantType] = (stats.token[grantType] || 0) + 1;
      if (failMode !== "none") {
        if (failMode === "invalid_grant") {
          ctx.status = 400;
          ctx.type = "application/json";
          ctx.body = JSON.stringify({
            error: "invalid_grant",
            error_description: "grant request is invalid",
          });
        } else if (failMode === "server_error") {
          ctx.status = 500;
          ctx.type = "text/html";
          ctx.body = "<html><body>down for maintenance</body></html>";
        } else if (failMode === "garbage") {
          ctx.status = 200;
          ctx.type = "text/plain";
          ctx.body = "access_token=yes-really";
        } else if (failMode === "slow") {
          await new Promise((r) => setTimeout(r, 30000));
          ctx.status = 504;
        }
        return;
      }
      try {
        await next();
      } finally {
        const body = ctx.body;
        if (body && typeof body === "object") {
          if (body.access_token) stats.issued.access.push(body.access_token);
          if (body.refresh_token) stats.issued.refresh.push(body.refresh_token);
          if (body.id_token) stats.issued.id.push(body.id_token);
        }
      }
      const body = ctx.body;
      if (swap && body && typeof body === "object" && body.id_token) {
        const s = swap;
        swap = null;
        ctx.body = { ...body, id_token: await swapped(jose, keys, body.id_token, s) };
        stats.swapped += 1;
      }
      return;
    }
    if (ctx.method === "POST" && ctx.path === "/token/revocation") {
      stats.revocation += 1;
    }
    await next();
  });

  const handler = provider.callback();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, issuer);
    try {
      if (url.pathname === "/test/stats") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(stats));
        return;
      }
      if (url.pathname === "/test/fail" && req.method === "POST") {
        failMode = url.searchParams.get("mode") || "none";
        res.writeHead(204);
        res.end();
        return;
      }
      if (url.pathname === "/test/id_token" && req.method === "POST") {
        swap = JSON.parse(await readBody(req));
        res.writeHead(204);
        res.end();
        return;
      }
      if (url.pathname === "/test/id_token_ttl" && req.method === "POST") {
        idTokenTtl = Number(url.searchParams.get("seconds"));
        res.writeHead(204);
        res.end();
        return;
      }
      if (url.pathname === "/test/signing_key") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(keys.jwk));
        return;
      }
      if (url.pathname.startsWith("/interaction/")) {
        const details = await provider.interactionDetails(req, res);
        const { prompt, params, session } = details;
        if (prompt.name === "login") {
          const account =
            url.searchParams.get("account") || params.login_hint || Object.keys(accounts)[0];
          await provider.interactionFinished(
            req,
            res,
            { login: { accountId: account } },
            { mergeWithLastSubmission: false },
          );
          return;
        }
        if (prompt.name === "consent") {
          const grant = details.grantId
            ? await provider.Grant.find(details.grantId)
            : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
          const d = prompt.details;
          if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(" "));
          if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
          if (d.missingResourceScopes) {
            for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
              grant.addResourceScope(indicator, scopes.join(" "));
            }
          }
          const grantId = await grant.save();
          await provider.interactionFinished(
            req,
            res,
            { consent: { grantId } },
            { mergeWithLastSubmission: true },
          );
          return;
        }
        res.writeHead(400, { "content-type": "text/plain" });
        res.end(`unexpected prompt ${prompt.name}`);
        return;
      }
      handler(req, res);
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(e && e.stack ? e.stack : e));
    }
  });
  server.listen(config.port, "127.0.0.1", () => {
    process.stdout.write("ready\n");
  });
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
