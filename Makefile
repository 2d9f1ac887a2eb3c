# Messenger backend: local development entry points.
# Servers (RabbitMQ 5673, PostgreSQL 5433, Redis 6380) run on loopback with
# data under .run/; see scripts/infra.sh and scripts/services.sh.
SHELL := /bin/bash
.DEFAULT_GOAL := help

FORMAT_PATHS := Package.swift Shared Services Tests

.PHONY: help up down logs build test e2e bench bench-foundation bench-auth bench-revocation bench-login-burst bench-socket bench-messaging bench-media fmt compose-check

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: ## Install and start the servers, build (debug), start the five services
	scripts/infra.sh install
	scripts/infra.sh start
	swift build
	scripts/services.sh start debug

down: ## Stop the services, then the servers
	scripts/services.sh stop
	scripts/infra.sh stop

logs: ## Follow the services' logs
	scripts/services.sh logs

build: ## swift build (debug)
	swift build

test: ## Full test run (scripts/test.sh): servers, services, tests, fault tests, compose check
	scripts/test.sh

e2e: ## Only the REST end-to-end tests (pytest Tests/e2e) against the running services (make up first)
	@[[ -f .run/local.env ]] || { echo "no .run/local.env: run make up first" >&2; exit 1; }
	@source scripts/env.sh && load_env_file .run/local.env && \
	exec .run/venv/bin/python -m pytest Tests/e2e -q -ra -p no:cacheprovider

bench: ## End-to-end load (scripts/bench.sh): release services, every scenario, report under results/ (make up first; ARGS="--scenarios=floor,dm" for a part)
	scripts/bench.sh $(ARGS)

bench-foundation: ## The foundation benchmark: AMQP publish/consume/RPC and Redis PUBLISH against raw C loops (release; make up first)
	swift build -c release --product foundation-bench
	.build/release/foundation-bench

bench-auth: ## Login, refresh and token verification through the running gateway (make up first)
	swift build -c release --product auth-bench
	.build/release/auth-bench

bench-revocation: ## How long a logout takes to reach its session's sockets, beside a socket ping and a REST call (make up first)
	. scripts/env.sh && load_env_file .run/local.env && .run/venv/bin/python Tests/Benchmarks/revocation_latency.py

bench-login-burst: ## 100 logins at once, each retrying 503, against auth's bcrypt threads (make up first)
	. scripts/env.sh && load_env_file .run/local.env && .run/venv/bin/python Tests/Benchmarks/login_burst.py

bench-messaging: ## create_message RPCs through the running messaging service, beside a raw PostgreSQL insert ceiling (make up first)
	swift build -c release --product messaging-bench
	@# Events left by earlier runs while delivery was stopped (never consumed) are dropped first.
	scripts/infra.sh rabbitmq-purge-idle delivery.events
	.build/release/messaging-bench

bench-media: ## Upload throughput through the gateway to the local store and a local Cloudinary-compatible server (make up first)
	swift build -c release --product media-bench
	.run/venv/bin/python scripts/bench-media.py

bench-socket: ## 10k idle Socket.IO clients: RSS per connection and broadcast rate, gateway vs python-socketio (make up first)
	swift build -c release --product socket-load
	scripts/bench-socket.sh

fmt: ## Format the Swift sources in place
	swift format --in-place --recursive $(FORMAT_PATHS)

compose-check: ## Validate compose.yaml (no Docker engine needed)
	docker-compose -f compose.yaml config -q
