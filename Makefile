# On a fresh machine with Python 3.11+ and make:
#   make demo [PORT=8000]  - the main job: the Flask blog over a local two-region lab
#   make test              - the test suite, in 3 processes (installs Debian's chromium when root, else says how)
#   make docs              - the documentation site into site/ (make docs-serve: on 127.0.0.1:8001)
#   make example-flask | example-django | example-gunicorn [PORT=8000]
#                          - one example app over a lab with its tables created, seeded and replicated
PYTHON ?= python3
VENV   ?= .venv
BIN    ?= $(VENV)/bin
PORT   ?= 8000
RUN    := $(abspath $(BIN))
LAB    := $(RUN)/regionproxy lab

.PHONY: demo docs docs-serve docs-mermaid test test-loaded test-slow chromium redis-server node-deps awscli bench lint clean example-flask example-django example-gunicorn

$(BIN)/regionproxy: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

demo: $(BIN)/regionproxy
	$(BIN)/regionproxy demo --port $(PORT)

# The status-page browser test drives Debian's chromium.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for the status-page browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "make test needs chromium for the status-page browser test: sudo apt-get install chromium" >&2; \
	fi

# The fleet tests start Debian's redis-server.
redis-server:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing redis-server (apt-get) for the fleet tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else \
	  echo "make test needs redis-server for the fleet tests: sudo apt-get install redis-server" >&2; \
	fi

# The sidecar's tests drive the AWS SDK for JavaScript v3 with Debian's nodejs.
SIDECAR_JS := tests/integration/sidecar_js
node-deps:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing nodejs and npm (apt-get) for the sidecar's JavaScript test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "make test needs Node 18+ and npm for the sidecar's JavaScript test: sudo apt-get install nodejs npm" >&2; \
	  fi; \
	fi
	@if [ ! -d $(SIDECAR_JS)/node_modules ] && command -v npm >/dev/null 2>&1; then \
	  cd $(SIDECAR_JS) && npm ci --no-audit --no-fund --silent; \
	fi

# The sidecar's tests drive the AWS CLI (PyPI's awscli) from a venv of its
# own: awscli pins its own botocore, which must not pick the project's.
AWSCLI := $(VENV)-awscli
awscli: $(AWSCLI)/bin/aws
$(AWSCLI)/bin/aws:
	$(PYTHON) -m venv $(AWSCLI)
	$(AWSCLI)/bin/python -m pip install --quiet --upgrade pip
	$(AWSCLI)/bin/python -m pip install --quiet "awscli>=1.32"

test: $(BIN)/regionproxy chromium redis-server node-deps awscli docs-mermaid
	$(BIN)/python -m pytest

example-flask: $(BIN)/regionproxy
	$(LAB) --example blog -- $(RUN)/flask --app examples/flask_blog/app.py run --port $(PORT)

example-django: $(BIN)/regionproxy
	$(LAB) --example blog -- $(RUN)/python examples/django_blog/manage.py runserver --noreload 127.0.0.1:$(PORT)

example-gunicorn: $(BIN)/regionproxy
	cd examples/gunicorn && $(LAB) --example gunicorn -- \
	  $(RUN)/gunicorn --config gunicorn.conf.py --preload --workers 2 --bind 127.0.0.1:$(PORT) app:application

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link
# or a name the API reference cannot find.
docs: $(BIN)/regionproxy docs-mermaid
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(BIN)/regionproxy docs-mermaid
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# The site's diagrams without the CDN (offline, and the docs' browser test):
# Mermaid's one file from npm, kept out of git. Without it the site loads it
# from unpkg.com, as mkdocs-material does by default.
MERMAID_VERSION := 11.17.2
MERMAID := docs/assets/javascripts/mermaid.min.js
docs-mermaid: $(MERMAID)
$(MERMAID):
	@if command -v npm >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null \
	    && tar xzf mermaid-$(MERMAID_VERSION).tgz package/dist/mermaid.min.js) \
	  && mkdir -p $(dir $@) && mv $$tmp/package/dist/mermaid.min.js $@; rm -rf $$tmp; \
	else \
	  echo "the docs' diagrams offline need npm (Mermaid): sudo apt-get install npm" >&2; \
	fi

# The slow tests: the soak (about 70 s) and the 3-minute benchmark run, one
# after the other in one process (-n 0): run side by side, each would load
# the other's figures.
test-slow: $(BIN)/regionproxy
	$(BIN)/python -m pytest -m slow -n 0

# The suite 5 times in a row while two busy loops hold both cores (flakiness check).
test-loaded: $(BIN)/regionproxy chromium redis-server node-deps awscli docs-mermaid
	.ci/loaded-check 5

lint: $(BIN)/regionproxy
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/lint-imports --config pyproject.toml

# The benchmark suite at its 3-minute size; results in benchmarks/results/.
bench: $(BIN)/regionproxy
	$(BIN)/regionproxy bench --quick --out benchmarks/results

clean:
	rm -rf $(VENV) build site src/*.egg-info
