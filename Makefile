# Two commands on a fresh machine: `make run` and `make test`. Everything else is a step they share.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app market
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test setup install assets translations db seed lint format bench clean

# The embedded shop runs its deadlines (unpaid orders expiring) in-process.
run: setup db seed
	MARKET_IN_PROCESS_JOBS=1 $(FLASK) run --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

setup: install assets translations

# The virtualenv is rebuilt when pyproject.toml changes.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Bootstrap, icons and htmx from npm, copied into static/vendor (ignored by git).
assets: static/vendor/.installed
static/vendor/.installed: package.json scripts/vendor_assets.sh
	npm install --no-audit --no-fund --loglevel=error
	sh scripts/vendor_assets.sh
	touch $@

# zh_CN is the default; msgids are Chinese (DESIGN.md §8), en is the second language.
translations: install
	$(BIN)/pybabel compile --use-fuzzy -d market/translations

db: install
	$(FLASK) db upgrade

seed: install
	$(FLASK) seed-demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Refresh the message catalogues after changing user-facing strings.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i messages.pot -d market/translations --no-fuzzy-matching
	rm messages.pot

bench: setup
	$(BIN)/python bench/storefront.py
	$(BIN)/python bench/checkout.py

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache .ruff_cache
