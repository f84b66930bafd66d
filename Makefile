# Everyday commands; `make` lists them. The PyPI tools they use (cargo-lambda with zig, the
# AWS SAM CLI, cfn-lint, checkov) are pinned in requirements-tools.txt and installed on
# first use into a cache by `scripts/check-infra.sh --tools`.
#
#   make build                      cargo lambda build --release --arm64, every function, with sizes
#   make package                    sam build of those binaries into target/sam/build (no AWS)
#   make deploy [STAGE=prod]        package + sam deploy (settings saved per stage in infra/samconfig.toml)
#   make sync [STAGE=dev]           sam sync --watch of a development stack
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

.PHONY: help build package deploy sync test lint dev watch invoke logs bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-7s %s\n", $$1, $$2}'

build: ## build every function for Lambda (arm64, release) and print each binary's size
	bash scripts/build-lambdas.sh

package: build ## sam build of the template from `make build`'s binaries into target/sam/build (offline; what deploy uploads)
	@$(TOOLS)
	# BuildMethod: rust-cargolambda builds in the source tree and shares target/: after
	# `make build` it compiles nothing and copies the bootstraps (README, "Deploy").
	sam build --template-file infra/template.yaml --build-dir $(SAM_BUILD_DIR) \
	  --cache-dir target/sam/cache </dev/null

deploy: package ## sam deploy of STAGE (default dev); a first deploy needs APP_DOMAIN and SENDER_ADDRESS, or a terminal
	@$(TOOLS)
	if grep -q '^\[$(STAGE)\.deploy\.parameters\]' $(SAMCONFIG); then
	  sam deploy --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(SAMCONFIG) --config-env $(STAGE) --no-fail-on-empty-changeset \
	    $(if $(PARAMETERS),--parameter-overrides $(PARAMETERS))
	elif [ -n "$(APP_DOMAIN)" ] && [ -n "$(SENDER_ADDRESS)" ]; then
	  echo "First deploy of stage $(STAGE): its settings are saved in infra/samconfig.toml (commit them)"
	  sam deploy --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(SAMCONFIG) --config-env $(STAGE) --save-params \
	    --stack-name accounts-$(STAGE) $(if $(REGION),--region $(REGION)) \
	    --capabilities CAPABILITY_IAM --resolve-s3 --no-confirm-changeset \
	    --no-fail-on-empty-changeset \
	    --parameter-overrides Stage=$(STAGE) AppDomain=$(APP_DOMAIN) \
	      SenderAddress=$(SENDER_ADDRESS) $(PARAMETERS) </dev/null
	elif [ -t 0 ]; then
	  echo "First deploy of stage $(STAGE): answer the prompts; they are saved in infra/samconfig.toml"
	  sam deploy --guided --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(SAMCONFIG) --config-env $(STAGE) \
	    --stack-name accounts-$(STAGE) --capabilities CAPABILITY_IAM \
	    --parameter-overrides Stage=$(STAGE)
	else
	  echo "make deploy: stage $(STAGE) was never deployed and there is no terminal to ask:" >&2
	  echo "  make deploy STAGE=$(STAGE) APP_DOMAIN=app.example.com SENDER_ADDRESS=no-reply@example.com [REGION=...] [PARAMETERS='Name=value ...']" >&2
	  exit 2
	fi

sync: ## sam sync --watch of a development STAGE (deployed once with make deploy): code changes go up as you save
	@$(TOOLS)
	case "$(STAGE)" in prod|production) echo "make sync: not for $(STAGE) (sam sync skips change sets)" >&2; exit 2;; esac
	# sam sync reads no deploy section, so the stage's saved settings are passed on.
	saved() { python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get(sys.argv[2], {}).get("deploy", {}).get("parameters", {}).get(sys.argv[3], ""))' $(SAMCONFIG) $(STAGE) "$$1"; }
	stack="$$(saved stack_name)"
	[ -n "$$stack" ] || { echo "make sync: deploy stage $(STAGE) once with make deploy first" >&2; exit 2; }
	region="$$(saved region)"
	sam sync --watch --template-file infra/template.yaml --stack-name "$$stack" \
	  $${region:+--region "$$region"} --capabilities CAPABILITY_IAM \
	  --parameter-overrides "$$(saved parameter_overrides)"

test: ## every check and test (fmt, clippy, cargo test on both backends): scripts/test.sh
	bash scripts/test.sh

lint: ## cargo fmt --check, clippy -D warnings, and the template checks (cfn-lint, sam validate, checkov)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	bash scripts/check-infra.sh
	bash scripts/check-deps.sh

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
