// Two local OpenID providers for the tests, on npm `oidc-provider` (an OpenID-certified
// implementation): one issuer behaving like Google, one like Sign in with Apple.
//
//   node tests/oidc/provider.mjs <state-dir>
//
// Each issuer listens on a free port of 127.0.0.1 and serves the real discovery, JWKS,
// authorization and token endpoints (authorization code flow, PKCE S256 required, codes
// single use). What the tests add around the provider, and why:
//
// - `POST /interaction/<uid>/login` (form fields `sub`, `email`, `email_verified`, `hd`,
//   `is_private_email`, `given_name`, `family_name`): logs a person in without a browser.
//   The account is whatever the test says, so every test has its own people.
// - Apple-like only: the `form_post` page also carries Apple's `user` parameter (the name,
//   as JSON) on the first authorization of a person for the client, as Apple sends it;
//   `email_verified` and `is_private_email` are strings ("true"/"false"), as Apple's are;
//   and the client secret is an ES256 JWT signed with the relying party's Apple key (the
//   provider writes that key to `<state-dir>/apple-key.pem`), checked here as Apple does
//   before the provider sees the request.
// - `POST /__test/tamper` with JSON `{"code", "mode"}`: the token response of that code gets
//   an ID token altered by `mode` (`audience`, `issuer`, `expired`, `none`, `hs256`,
//   `nonce`, `rotated`), for the relying party's refusal tests. Everything else about the
//   response stays the provider's.
//
// Writes `<state-dir>/oidc.env` (`export OIDC_GOOGLE_ISSUER=...` lines) once both listen.

import { createServer } from 'node:http';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const stateDir = process.argv[2];
if (!stateDir) {
  console.error('usage: provider.mjs <state-dir>');
  process.exit(2);
}

// The relying party's registration, as the tests configure it (tests/src/lib.rs).
const REDIRECT_BASE = 'https://app.example.test';
const GOOGLE_CLIENT = { id: 'google-test-client', secret: 'google-test-secret' };
const APPLE_CLIENT = { id: 'test.apple.services', secret: 'unused-static-secret' };
const APPLE_TEAM_ID = 'TESTTEAM01';
const APPLE_KEY_ID = 'TESTKEY001';

const b64url = (data) => Buffer.from(data).toString('base64url');

function rsaKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey, jwk: { ...jwk, kid, alg: 'RS256', use: 'sig' } };
}

function publicJwk(jwk) {
  const { kty, n, e, kid, alg, use } = jwk;
  return { kty, n, e, kid, alg, use };
}

function signJwt(header, payload, privateKey) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey);
  return `${input}.${b64url(signature)}`;
}

function decodeJwt(jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  return { header, payload };
}

// The relying party's Apple key (ES256), as Apple keeps its public half.
const appleClientKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
fs.writeFileSync(
  path.join(stateDir, 'apple-key.pem'),
  appleClientKey.privateKey.export({ format: 'pem', type: 'pkcs8' }),
  { mode: 0o600 },
);

function appleClientSecretValid(secret, issuer) {
  try {
    const [h, p, s] = secret.split('.');
    const { header, payload } = decodeJwt(secret);
    const now = Math.floor(Date.now() / 1000);
    const signed = crypto.verify(
      'sha256',
      Buffer.from(`${h}.${p}`),
      { key: appleClientKey.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(s, 'base64url'),
    );
    return signed && header.alg === 'ES256' && header.kid === APPLE_KEY_ID
      && payload.iss === APPLE_TEAM_ID && payload.sub === APPLE_CLIENT.id
      && payload.aud === issuer && payload.exp > now && payload.iat <= now + 60
      && payload.exp - payload.iat <= 15777000;
  } catch {
    return false;
  }
}

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

// Rewrites what `res.end` sends, for one response.
function rewriteBody(res, rewrite) {
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    const text = chunk === undefined ? '' : Buffer.from(chunk).toString();
    const changed = rewrite(text);
    if (!res.headersSent) {
      res.setHeader('content-length', Buffer.byteLength(changed));
    }
    return end(changed, ...rest.filter((arg) => typeof arg === 'function'));
  };
}

const issuers = {};

async function startIssuer(kind) {
  const server = createServer();
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;
  const signingKey = rsaKey(`${kind}-1`);
  const rotatedKey = rsaKey(`${kind}-2`);
  const people = new Map(); // sub -> claims
  const interactionPeople = new Map(); // interaction uid -> sub
  const names = new Map(); // sub -> the name Apple sends once (never a claim)
  const namedOnce = new Set(); // subs whose `user` parameter was sent
  const tampering = new Map(); // authorization code -> mode
  let rotated = false;
  const apple = kind === 'apple';
  const client = apple ? APPLE_CLIENT : GOOGLE_CLIENT;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: client.id,
      client_secret: client.secret,
      redirect_uris: [`${REDIRECT_BASE}/v1/oauth/${kind}/callback`],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [signingKey.jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    // Google and Apple put the email claims in the ID token of the code flow.
    conformIdTokenClaims: false,
    claims: apple
      ? { openid: ['sub'], email: ['email', 'email_verified', 'is_private_email'], name: [] }
      : { openid: ['sub'], email: ['email', 'email_verified', 'hd'], profile: ['name', 'given_name', 'family_name'] },
    scopes: apple ? ['openid', 'email', 'name'] : ['openid', 'email', 'profile'],
    ttl: { IdToken: 3600, AuthorizationCode: 120, AccessToken: 600, Session: 600, Interaction: 600, Grant: 600 },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, sub) => {
      const claims = people.get(sub);
      return claims && { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  provider.proxy = false;
  const handle = provider.callback();

  function personFrom(form) {
    const flag = (name) => {
      if (form[name] === undefined || form[name] === '') return undefined;
      const value = form[name] === 'true';
      return apple ? String(value) : value;
    };
    const claims = {
      email: form.email || undefined,
      email_verified: flag('email_verified'),
    };
    if (apple) {
      claims.is_private_email = flag('is_private_email');
    } else {
      claims.hd = form.hd || undefined;
      claims.given_name = form.given_name || undefined;
      claims.family_name = form.family_name || undefined;
      if (form.given_name) claims.name = [form.given_name, form.family_name].filter(Boolean).join(' ');
    }
    return Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
  }

  async function login(req, res, uid) {
    const form = querystring.parse(await readBody(req));
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid || !form.sub) {
      res.writeHead(400).end('bad interaction');
      return;
    }
    people.set(form.sub, personFrom(form));
    if (apple && form.given_name) {
      // What Apple keeps to send once: the name typed at the first authorization.
      names.set(form.sub, { firstName: form.given_name, lastName: form.family_name || '' });
    }
    interactionPeople.set(uid, form.sub);
    const grant = new provider.Grant({ accountId: form.sub, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: form.sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  function tamper(idToken, mode) {
    const { header, payload } = decodeJwt(idToken);
    const now = Math.floor(Date.now() / 1000);
    const other = issuers[apple ? 'google' : 'apple'];
    switch (mode) {
      case 'audience':
        return signJwt(header, { ...payload, aud: 'someone-else' }, signingKey.privateKey);
      case 'issuer':
        // A token the other issuer signed, naming itself: the mix-up.
        return signJwt(
          { ...header, kid: other.signingKey.jwk.kid },
          { ...payload, iss: other.issuer },
          other.signingKey.privateKey,
        );
      case 'expired':
        return signJwt(header, { ...payload, iat: now - 7200, exp: now - 3600 }, signingKey.privateKey);
      case 'nonce':
        return signJwt(header, { ...payload, nonce: 'not-the-nonce' }, signingKey.privateKey);
      case 'none':
        return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
      case 'hs256': {
        // The classic confusion: HMAC keyed with the issuer's public key.
        const input = `${b64url(JSON.stringify({ ...header, alg: 'HS256' }))}.${b64url(JSON.stringify(payload))}`;
        const publicPem = crypto.createPublicKey(signingKey.privateKey).export({ format: 'pem', type: 'spki' });
        return `${input}.${b64url(crypto.createHmac('sha256', publicPem).update(input).digest())}`;
      }
      case 'rotated':
        // Signed with a key the JWKS publishes only from now on.
        rotated = true;
        return signJwt({ ...header, kid: rotatedKey.jwk.kid }, payload, rotatedKey.privateKey);
      default:
        return idToken;
    }
  }

  async function token(req, res) {
    const form = querystring.parse(await readBody(req));
    if (apple && !appleClientSecretValid(String(form.client_secret || ''), issuer)) {
      form.client_secret = 'refused-client-secret';
    } else if (apple) {
      form.client_secret = APPLE_CLIENT.secret;
    }
    const mode = tampering.get(String(form.code));
    if (mode) {
      rewriteBody(res, (text) => {
        try {
          const body = JSON.parse(text);
          if (body.id_token) body.id_token = tamper(body.id_token, mode);
          return JSON.stringify(body);
        } catch {
          return text;
        }
      });
    }
    // The provider reads an already-read body from `req.body`.
    req.body = form;
    return handle(req, res);
  }

  server.on('request', async (req, res) => {
    try {
      const url = new URL(req.url, issuer);
      const interaction = url.pathname.match(/^\/interaction\/([^/]+)\/login$/);
      if (req.method === 'POST' && interaction) {
        return await login(req, res, interaction[1]);
      }
      if (req.method === 'POST' && url.pathname === '/__test/tamper') {
        const { code, mode } = JSON.parse(await readBody(req));
        tampering.set(code, mode);
        res.writeHead(204).end();
        return undefined;
      }
      if (req.method === 'POST' && url.pathname === '/token') {
        return await token(req, res);
      }
      if (req.method === 'GET' && url.pathname === '/jwks' && rotated) {
        rewriteBody(res, (text) => {
          const body = JSON.parse(text);
          body.keys.push(publicJwk(rotatedKey.jwk));
          return JSON.stringify(body);
        });
      }
      const resumed = url.pathname.match(/^\/auth\/([^/]+)$/);
      if (apple && resumed) {
        const sub = interactionPeople.get(resumed[1]);
        const name = sub && names.get(sub);
        if (name && !namedOnce.has(sub)) {
          // Apple's `user` parameter, only on a person's first authorization.
          rewriteBody(res, (text) => {
            if (!text.includes('name="code"')) return text;
            namedOnce.add(sub);
            const user = JSON.stringify({ name, email: people.get(sub).email });
            const input = `<input type="hidden" name="user" value="${user.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')}"/>`;
            return text.replace('</form>', `${input}\n</form>`);
          });
        }
      }
      return handle(req, res);
    } catch (error) {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
      return undefined;
    }
  });

  issuers[kind] = { issuer, signingKey, people };
  return issuer;
}

const google = await startIssuer('google');
const apple = await startIssuer('apple');

const env = [
  `export OIDC_GOOGLE_ISSUER=${google}`,
  `export OIDC_APPLE_ISSUER=${apple}`,
  `export OIDC_APPLE_KEY_FILE=${path.join(stateDir, 'apple-key.pem')}`,
  `export OIDC_GOOGLE_CLIENT_ID=${GOOGLE_CLIENT.id}`,
  `export OIDC_GOOGLE_CLIENT_SECRET=${GOOGLE_CLIENT.secret}`,
  `export OIDC_APPLE_CLIENT_ID=${APPLE_CLIENT.id}`,
  `export OIDC_APPLE_TEAM_ID=${APPLE_TEAM_ID}`,
  `export OIDC_APPLE_KEY_ID=${APPLE_KEY_ID}`,
].join('\n');
fs.writeFileSync(path.join(stateDir, 'oidc.env.tmp'), `${env}\n`);
fs.renameSync(path.join(stateDir, 'oidc.env.tmp'), path.join(stateDir, 'oidc.env'));
console.log(`oidc providers ready: google ${google}, apple ${apple}`);
