"""Studies that need code of their own: IZF's toy problem (Fig. 4). The papers' tables and
sensitivity figures are grid files (``configs/studies/``) run by ``unseen bench``."""
