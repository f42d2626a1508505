# Kubernetes verbs, included from the Makefile. Needs Docker; helm and kind are
# built from their Go modules into .cache/bin when they are not on PATH (scripts/k8s-tools.sh).
#   make images              build the three service images (tombstone-*:dev)
#   make kind-up             kind cluster + images loaded into it (idempotent)
#   make deploy              helm upgrade --install with values-kind.yaml
#   make kind-down           delete the kind cluster
#   make chart-lint          helm lint --strict for every values file
#   make chart-test          chart unit + schema tests (pytest tests/chart)
# Without kind (no Docker Hub, no node image): a real cluster built from the package registries,
# as root on Debian (scripts/cluster.sh, docs/kubernetes.md); CLUSTER_NODES nodes (default 3:
# a control plane and two workers, as k8s/kind-config.yaml), NetworkPolicies enforced,
# metrics-server:
#   make cluster-up          build (cached in .cache/) and start it, import the images
#   make cluster-e2e         cluster-up, then the user's workflow on it (tests/cluster), then down
#   make cluster-down        stop it and delete its state

CHART         := charts/tombstone-pipeline
KIND_CLUSTER  ?= tombstone
KIND_CONFIG   := k8s/kind-config.yaml
RELEASE       ?= tombstone-pipeline
NAMESPACE     ?= tombstone
IMAGE_PREFIX  ?= tombstone-
IMAGE_TAG     ?= dev
# Base image of services/Dockerfile and of the cluster's stand-ins. Empty = scripts/base-image.sh
# decides: the official python image when Docker has it or can pull it, else the local Debian
# base (scripts/docker-base-image.sh, built when missing). CI sets local/python:3.13-trixie.
BASE_IMAGE    ?=
BASE_IMAGE_OF  = $$(BASE_IMAGE="$(BASE_IMAGE)" scripts/base-image.sh)
K8S_SERVICES  := producer processor topic-init
K8S_TOOLS     := scripts/k8s-tools.sh
HELM           = $(shell $(K8S_TOOLS) --path helm)
KIND           = $(shell $(K8S_TOOLS) --path kind)
CHART_VALUES  := $(wildcard $(CHART)/values*.yaml)

.PHONY: docker images kind-up deploy kind-down chart-lint chart-test k8s-tools cluster-up cluster-down cluster-status cluster-e2e

docker: ## Make sure a Docker daemon runs (installs/starts Debian's docker.io when root)
	@scripts/docker-daemon.sh

k8s-tools: ## Install helm and kind into .cache/bin when missing
	@$(K8S_TOOLS)

images: docker ## Build the service images (BuildKit where available) and print their sizes
	@base=$(BASE_IMAGE_OF) && BASE_IMAGE="$$base" IMAGE_PREFIX="$(IMAGE_PREFIX)" IMAGE_TAG="$(IMAGE_TAG)" scripts/images.sh

kind-up: images ## Create the kind cluster if missing and load the images into it
	@if $(KIND) get clusters | grep -qx "$(KIND_CLUSTER)"; then \
	  echo "kind cluster $(KIND_CLUSTER) exists"; \
	else \
	  $(KIND) create cluster --name "$(KIND_CLUSTER)" --config "$(KIND_CONFIG)" --wait 120s; \
	fi
	@for svc in $(K8S_SERVICES); do \
	  $(KIND) load docker-image --name "$(KIND_CLUSTER)" "$(IMAGE_PREFIX)$$svc:$(IMAGE_TAG)" || exit 1; \
	done
	@if command -v kubectl >/dev/null; then kubectl config use-context "kind-$(KIND_CLUSTER)" >/dev/null; fi
	@echo "next: make deploy"

deploy: ## helm upgrade --install the chart with the kind values (waits for topic-init)
	$(HELM) upgrade --install "$(RELEASE)" "$(CHART)" \
	  --namespace "$(NAMESPACE)" --create-namespace \
	  --values "$(CHART)/values-kind.yaml" --set images.tag="$(IMAGE_TAG)" \
	  --wait --timeout 10m
	@echo "next: helm test $(RELEASE) -n $(NAMESPACE) --logs   (docs/kubernetes.md)"

kind-down: ## Delete the kind cluster
	@$(KIND) delete cluster --name "$(KIND_CLUSTER)"

chart-lint: ## helm lint --strict with the default, kind and full values
	@for values in $(CHART_VALUES); do \
	  echo "helm lint --strict -f $$values"; \
	  $(HELM) lint --strict "$(CHART)" --values "$$values" || exit 1; \
	done

chart-test: setup ## Chart unit tests and offline Kubernetes schema validation
	@HELM="$(HELM)" $(VENV)/pytest tests/chart -q

CLUSTER := scripts/cluster.sh
CLUSTER_NODES ?= 3
export CLUSTER_NODES

cluster-up: setup images ## Kubernetes of CLUSTER_NODES nodes from the registries (no kind; root), images imported
	@$(CLUSTER) up
	@base=$(BASE_IMAGE_OF) && BASE_IMAGE="$$base" $(CLUSTER) images
	@base=$(BASE_IMAGE_OF) && BASE_IMAGE="$$base" $(CLUSTER) addons
	@echo "next: eval \"\$$($(CLUSTER) env)\"; kubectl get pods -A"

cluster-down: ## Stop the cluster and delete its state (builds stay cached)
	@$(CLUSTER) down

cluster-status: ## What runs of the cluster, and its nodes
	@$(CLUSTER) status

# CLUSTER_KEDA=1 also builds and installs KEDA and runs its scenario (tests/cluster/test_keda.py).
cluster-e2e: ## cluster-up, the user's workflow on it (tests/cluster), cluster-down
	@HELM="$(HELM)" $(MAKE) --no-print-directory cluster-up
	@status=0; HELM="$(HELM)" $(VENV)/pytest tests/cluster -m "cluster$(if $(filter 1,$(CLUSTER_KEDA)),, and not keda)" \
	  -p no:cacheprovider -s --timeout 1800 --durations=30 || status=$$?; \
	  $(CLUSTER) down; exit $$status
