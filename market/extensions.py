"""Flask extensions, created unbound here and bound in create_app."""

from flask_babel import Babel
from flask_caching import Cache
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from market.database import Session
from market.models import Base

db = SQLAlchemy(model_class=Base, session_options={"class_": Session})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# The storefront's page cache (market/pagecache/): Redis with REDIS_URL, else in-process.
cache = Cache()
