// A webhook receiver for the integration tests, verifying with the official Standard Webhooks
// library for JavaScript (standardwebhooks, from npm). Usage:
//   node webhook_receiver.js PORT SECRET_FILE OUT_FILE
// Each POST is verified with the secret in SECRET_FILE (first line) and answered 204 when it
// verifies, 401 when not; each is appended to OUT_FILE as a JSON line (webhook-id, verified,
// status, event type). Prints "ready" once listening.
"use strict";
const fs = require("fs");
const http = require("http");
const { Webhook } = require("standardwebhooks");

const [port, secretFile, outFile] = process.argv.slice(2);

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const secret = fs.readFileSync(secretFile, "utf8").split("\n")[0].trim();
      let verified = false;
      let type = null;
      try {
        const payload = new Webhook(secret).verify(body, req.headers);
        verified = true;
        type = payload.type;
      } catch (e) {
        verified = false;
      }
      const status = verified ? 204 : 401;
      fs.appendFileSync(
        outFile,
        JSON.stringify({ id: req.headers["webhook-id"], verified, status, type }) + "\n",
      );
      res.writeHead(status);
      res.end();
    });
  })
  .listen(Number(port), "127.0.0.1", () => console.log("ready"));
