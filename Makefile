# Build the deb and the rpm into dist/ (as root on Debian 12: installs the build tools).
#   make packages                  both, then lintian and rpmlint
#   make deb DEB_VERSION=0.1.0+1   a deb with another version (a newer build for upgrades)
#   make check-packages            lintian and rpmlint on what dist/ holds
# Debian's own tools run with PATH=/usr/bin:/bin so a venv's python3 never builds them.

SHELL := /bin/bash
PY := /usr/bin/python3
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' nodeguard/__init__.py)
DEB_VERSION ?= $(VERSION)
RPM_RELEASE ?= 1
DIST ?= dist
BUILD ?= build/pkg
SYSPATH := PATH=/usr/bin:/bin:/usr/sbin:/sbin
BUILD_PKGS := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
	python3-yaml dpkg-dev lintian rpm rpmlint git make

DEB := $(DIST)/nodeguard_$(DEB_VERSION)_all.deb
RPM := $(DIST)/nodeguard-$(VERSION)-$(RPM_RELEASE).noarch.rpm
STAGE := $(BUILD)/deb/nodeguard-$(DEB_VERSION)

.PHONY: packages deb rpm build-deps check-packages clean-packages

packages: deb rpm check-packages

build-deps:
	@missing=$$(for p in $(BUILD_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing build tools: $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The source files: tracked and new, never ignored ones, in a git checkout; in an export
# without .git (git archive, a release tarball) every file but the build's own output.
SOURCE_FILES := { git ls-files -co --exclude-standard 2>/dev/null \
	|| find . \( -name .git -o -name .venv -o -name __pycache__ -o -name '*.egg-info' \
		-o -name '.*_cache' -o -path ./build -o -path ./dist \) -prune -o -type f -print \
		| sed 's|^\./||'; }

# The source files copied into a staging tree.
define stage_sources
	rm -rf $(1) && mkdir -p $(1)
	$(SOURCE_FILES) | grep -v '^packaging/debian/' \
		| while IFS= read -r f; do [ -e "$$f" ] && printf '%s\n' "$$f"; done \
		| tar -cf - --verbatim-files-from -T - | tar -xf - -C $(1)
endef

deb: build-deps
	$(call stage_sources,$(STAGE))
	cp -a packaging/debian $(STAGE)/debian
	cp systemd/nodeguard.service $(STAGE)/debian/nodeguard.service
	@if [ "$(DEB_VERSION)" != "$(VERSION)" ]; then \
		{ printf 'nodeguard (%s) unstable; urgency=medium\n\n  * Build %s.\n\n' \
			'$(DEB_VERSION)' '$(DEB_VERSION)'; \
		  printf ' -- %s  %s\n\n' "$$(sed -n 's/^Maintainer: //p' packaging/debian/control)" \
			"$$(date -R)"; cat packaging/debian/changelog; } > $(STAGE)/debian/changelog; \
	fi
	cd $(STAGE) && $(SYSPATH) dpkg-buildpackage -us -uc -b --no-sign >../build.log 2>&1 \
		|| { tail -40 ../build.log; exit 1; }
	mkdir -p $(DIST) && mv $(BUILD)/deb/nodeguard_$(DEB_VERSION)_all.deb $(DEB)
	@echo "built $(DEB)"

rpm: build-deps
	$(call stage_sources,$(BUILD)/rpm/src/nodeguard-$(VERSION))
	mkdir -p $(BUILD)/rpm/SOURCES $(DIST)
	tar -C $(BUILD)/rpm/src -czf $(BUILD)/rpm/SOURCES/nodeguard-$(VERSION).tar.gz \
		nodeguard-$(VERSION)
	$(SYSPATH) rpmbuild -bb --nodeps packaging/rpm/nodeguard.spec \
		--define "_topdir $(abspath $(BUILD)/rpm)" --define "pkg_version $(VERSION)" \
		--define "pkg_release $(RPM_RELEASE)" >$(BUILD)/rpm/build.log 2>&1 \
		|| { tail -40 $(BUILD)/rpm/build.log; exit 1; }
	mv $(BUILD)/rpm/RPMS/noarch/nodeguard-$(VERSION)-$(RPM_RELEASE).noarch.rpm $(RPM)
	@echo "built $(RPM)"

# lintian: no errors, no warnings (nodeguard.lintian-overrides says why any is fine);
# rpmlint: no errors.
check-packages:
	$(SYSPATH) lintian --fail-on error,warning $(DEB)
	$(SYSPATH) rpmlint -r packaging/rpm/nodeguard.rpmlintrc packaging/rpm/nodeguard.spec $(RPM)

clean-packages:
	rm -rf $(BUILD) $(DIST)
