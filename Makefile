# Messenger backend: local development entry points.
# Servers (RabbitMQ 5673, PostgreSQL 5433, Redis 6380) run on loopback with
# data under .run/; see scripts/infra.sh and scripts/services.sh.
SHELL := /bin/bash
.DEFAULT_GOAL := help

FORMAT_PATHS := Package.swift Shared Services Tests

.PHONY: help up down logs build test bench fmt compose-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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

bench: ## Build and run the benchmark (release)
	swift build -c release --product foundation-bench
	.build/release/foundation-bench

fmt: ## Format the Swift sources in place
	swift format --in-place --recursive $(FORMAT_PATHS)

compose-check: ## Validate compose.yaml (no Docker engine needed)
	docker-compose -f compose.yaml config -q
