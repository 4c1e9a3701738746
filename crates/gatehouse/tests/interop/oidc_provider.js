// A certified OpenID provider for the integration tests: `oidc-provider` from npm (pinned by the
// test harness), on 127.0.0.1. Usage:
//   node oidc_provider.js CONFIG_JSON_FILE
// CONFIG: {"port": n, "clients": [{client_id, client_secret, redirect_uris, ...}],
//          "accounts": {"alice": {"email": ..., "email_verified": true, "name": ...}},
//          "access_token_ttl": seconds, "refresh_token_ttl": seconds}
// Prints "ready" once listening.
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
"use strict";
const fs = require("fs");
const http = require("http");
const { pathToFileURL } = require("url");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};
const issuer = `http://127.0.0.1:${config.port}`;
const stats = { token: { all: 0 }, revocation: 0, issued: { access: [], refresh: [] } };
let failMode = "none";

async function main() {
  const entry = require.resolve("oidc-provider");
  const { default: Provider } = await import(pathToFileURL(entry).href);
  const provider = new Provider(issuer, {
    clients: config.clients,
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
      IdToken: 3600,
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
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const raw = Buffer.concat(chunks).toString("utf8");
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
        }
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
