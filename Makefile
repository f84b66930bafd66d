# Everyday commands; `make` lists them. The PyPI tools they use (cargo-lambda with zig, the
# AWS SAM CLI, cfn-lint, checkov) are pinned in requirements-tools.txt and installed on
# first use into a cache by `scripts/check-infra.sh --tools`.
#
#   make build                      cargo lambda build --release --arm64, every function, with sizes
#   make deploy [STAGE=prod]        sam build + sam deploy (guided the first time for a stage)
#   make test | lint | dev | watch | bench  see below

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

STAGE ?= dev
SAMCONFIG := $(CURDIR)/infra/samconfig.toml
SAM_BUILD_DIR := target/sam/build
# cargo lambda watch: http://127.0.0.1:$(WATCH_PORT)/lambda-url/<function>/<path>
WATCH_PORT ?= 9000
WATCH_STATE := .test-run/watch
# make invoke / make logs
FUNCTION ?= signup
EVENT ?= tests/fixtures/apigw-v2-health.json

# Puts the pinned tools first on PATH (installs them the first time).
TOOLS := export PATH="$$(bash scripts/check-infra.sh --tools):$$PATH" SAM_CLI_TELEMETRY=0

.PHONY: help build deploy test lint dev watch invoke logs bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-7s %s\n", $$1, $$2}'

build: ## build every function for Lambda (arm64, release) and print each binary's size
	bash scripts/build-lambdas.sh

deploy: ## sam build + sam deploy of STAGE (default dev); guided the first time
	@$(TOOLS)
	if command -v rustup >/dev/null; then rustup target add aarch64-unknown-linux-gnu; fi
	sam build --template-file infra/template.yaml --build-dir $(SAM_BUILD_DIR) \
	  --cache-dir target/sam/cache --config-file $(SAMCONFIG) --config-env $(STAGE)
	if grep -q '^\[$(STAGE)\.deploy\.parameters\]' $(SAMCONFIG); then
	  sam deploy --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(SAMCONFIG) --config-env $(STAGE)
	else
	  echo "First deploy of stage $(STAGE): answer the prompts; they are saved in infra/samconfig.toml"
	  sam deploy --guided --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(SAMCONFIG) --config-env $(STAGE) \
	    --stack-name accounts-$(STAGE) --capabilities CAPABILITY_IAM \
	    --parameter-overrides Stage=$(STAGE)
	fi

test: ## every check and test (fmt, clippy, cargo test on both backends): scripts/test.sh
	bash scripts/test.sh

lint: ## cargo fmt --check, clippy -D warnings, and the template checks (cfn-lint, sam validate, checkov)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	bash scripts/check-infra.sh

bench: ## benchmarks: cold start, binary sizes, DynamoDB round trips, throughput per core, argon2 -> bench/REPORT.md
	bash bench/run.sh

dev: ## the local server on http://localhost:3000 (embedded store, no AWS)
	cargo run -p dev-server

watch: ## every function under cargo lambda watch, over DynamoDB Local and the SES emulator
	@bash scripts/emulators.sh start $(WATCH_STATE) >/dev/null
	trap 'bash scripts/emulators.sh stop $(WATCH_STATE)' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	source $(WATCH_STATE)/env
	export APP_BASE_URL=http://localhost:3000 TABLE_NAME=accounts-local \
	  MAIL_FROM='Account Security <no-reply@accounts.localhost>' ENUMERATION_FLOOR_MS=50 \
	  RUST_LOG=$${RUST_LOG:-info}
	# Every function process must share the keys (in AWS they come from SSM).
	export JWT_SIGNING_KEY="$$(openssl genpkey -algorithm ed25519)"
	export JWT_VERIFICATION_KEYS="$$(printf '%s\n' "$$JWT_SIGNING_KEY" | openssl pkey -pubout)"
	export TOTP_ENCRYPTION_KEY="$$(openssl rand -base64 32)"
	# DynamoDB Local starts empty: the local server creates the table (the same code as
	# the tests), then stops.
	cargo build -q -p dev-server
	STORE=dynamodb PORT=$$(( $(WATCH_PORT) + 1 )) target/debug/dev-server >$(WATCH_STATE)/table.log 2>&1 &
	server=$$!
	for _ in $$(seq 1 60); do
	  curl -fsS -o /dev/null http://127.0.0.1:$$(( $(WATCH_PORT) + 1 ))/v1/health && break
	  kill -0 $$server 2>/dev/null || { cat $(WATCH_STATE)/table.log; exit 1; }
	  sleep 1
	done
	kill $$server
	$(TOOLS)
	echo
	echo "Functions:  http://127.0.0.1:$(WATCH_PORT)/lambda-url/<function>/<path>"
	echo "  e.g.      curl http://127.0.0.1:$(WATCH_PORT)/lambda-url/signup/v1/health"
	echo "Sent mail:  $$SES_EMULATOR_URL (the SES emulator)"
	echo
	cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $(WATCH_PORT)

invoke: ## send EVENT (a fixture) to FUNCTION under `make watch`, e.g. FUNCTION=cleanup EVENT=tests/fixtures/eventbridge-scheduled.json
	@$(TOOLS)
	cargo lambda invoke $(FUNCTION) --data-file $(EVENT) \
	  --invoke-address 127.0.0.1 --invoke-port $(WATCH_PORT)

logs: ## tail the deployed FUNCTION's logs in STAGE (needs AWS credentials)
	@$(TOOLS)
	sam logs --cw-log-group /aws/lambda/accounts-$(STAGE)-$(FUNCTION) --tail
