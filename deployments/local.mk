# Local Prefect 3 stack (server on 127.0.0.1, srgan-local pool, deployments, one worker).
# Included from the top-level Makefile; settings via S2SR_* variables, see deployments/local.sh.

.PHONY: prefect-up prefect-down prefect-status

prefect-up: setup
	bash deployments/local.sh up

prefect-down:
	bash deployments/local.sh down

prefect-status:
	bash deployments/local.sh status
